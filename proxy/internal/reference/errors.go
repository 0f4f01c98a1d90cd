package reference

import (
	"encoding/json"
	"net/http"
)

// errorBody is wharf's own error answer: {"error": "...", "service": "..."},
// written here again, as the messages below, rather than taken from the
// data path, which the tests hold to them.
type errorBody struct {
	Error   string `json:"error"`
	Service string `json:"service,omitempty"`
}

// writeError answers with status and a JSON body naming the service.
func writeError(w http.ResponseWriter, status int, msg, service string) {
	b, _ := json.Marshal(errorBody{Error: msg, Service: service})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
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
