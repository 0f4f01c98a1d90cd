package proxy

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// appendErrorResponse appends a complete HTTP/1.1 answer with wharf's JSON
// error body (errorBody), with no-store caching.
func appendErrorResponse(dst []byte, status int, msg, service string, closeConn bool) []byte {
	body, _ := json.Marshal(errorBody{Error: msg, Service: service})
	body = append(body, '\n')
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, http.StatusText(status)...)
	dst = append(dst, "\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	if closeConn {
		dst = append(dst, "\r\nConnection: close"...)
	}
	dst = append(dst, "\r\n\r\n"...)
	return append(dst, body...)
}
