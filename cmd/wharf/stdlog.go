package main

import (
	stdlog "log"
	"strings"

	"github.com/rs/zerolog"
)

// serverLog returns the log.Logger for a net/http server's ErrorLog, so that
// what the server reports (TLS handshake failures, HTTP/2 connection
// errors, panics in handlers) is a line of wharf's log like every other,
// with a field naming the server, instead of free text beside it.
//
// A failed TLS handshake is logged at debug: scanners and clients that
// hang up early make them all day, and they say nothing about wharf.
func serverLog(log zerolog.Logger, server string) *stdlog.Logger {
	return stdlog.New(serverLogWriter{log.With().Str("server", server).Logger()}, "", 0)
}

type serverLogWriter struct{ log zerolog.Logger }

func (w serverLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimRight(string(p), "\n")
	level := zerolog.WarnLevel
	if strings.HasPrefix(msg, "http: TLS handshake error") {
		level = zerolog.DebugLevel
	}
	w.log.WithLevel(level).Msg(msg)
	return len(p), nil
}
