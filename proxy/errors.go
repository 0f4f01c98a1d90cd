package proxy

// errorBody is wharf's own error answer: {"error": "...", "service": "..."}.
type errorBody struct {
	Error   string `json:"error"`
	Service string `json:"service,omitempty"`
}

// Messages of wharf's own answers.
const (
	msgNoRoute    = "no service matches this request"
	msgAboveRoot  = "the path climbs above the root"
	msgShortage   = "service unavailable: the proxy is short of connections"
	msgNoPeer     = "service unavailable: no peer is ready"
	msgAllFailed  = "bad gateway: every attempt to reach a peer failed"
	msgBadRequest = "bad request"
)
