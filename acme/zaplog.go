package acme

import (
	"github.com/rs/zerolog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newZapLogger returns a zap logger that writes certmagic's own log lines
// to log at debug level. The Manager logs the events a person needs (a
// certificate obtained, renewed, or failed, with its host) once each at
// info or error; certmagic's step-by-step lines ("acquiring lock",
// "trying to solve challenge") are detail, kept for --log-level debug.
func newZapLogger(log zerolog.Logger) *zap.Logger {
	if log.GetLevel() > zerolog.DebugLevel {
		return zap.NewNop()
	}
	return zap.New(zapCore{log: log})
}

// zapCore is a zapcore.Core over zerolog.
type zapCore struct {
	log    zerolog.Logger
	fields []zapcore.Field
}

func (c zapCore) Enabled(zapcore.Level) bool { return true }

func (c zapCore) With(fields []zapcore.Field) zapcore.Core {
	return zapCore{log: c.log, fields: append(append([]zapcore.Field(nil), c.fields...), fields...)}
}

func (c zapCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	return ce.AddCore(e, c)
}

func (c zapCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	c.log.Debug().Str("certmagic", e.LoggerName).Str("certmagic_level", e.Level.String()).
		Fields(enc.Fields).Msg(e.Message)
	return nil
}

func (c zapCore) Sync() error { return nil }
