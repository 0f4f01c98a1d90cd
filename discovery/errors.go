package discovery

import (
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
)

func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

// explain turns a failure to reach the engine into a sentence that names
// the fix.
func explain(err error, host string) string {
	const mount = "-v /var/run/docker.sock:/var/run/docker.sock:ro"
	// The client's own error hides the cause ("Is the docker daemon
	// running?"); for a unix socket, look at the socket itself.
	if path, ok := strings.CutPrefix(host, "unix://"); ok && !strings.Contains(err.Error(), "events stream") {
		if _, serr := os.Stat(path); serr != nil {
			err = serr
		} else if c, derr := net.DialTimeout("unix", path, time.Second); derr != nil {
			err = derr
		} else {
			c.Close()
		}
	}
	switch {
	case errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EACCES) ||
		strings.Contains(err.Error(), "permission denied"):
		return "permission denied on the Docker socket " + host +
			": run wharf as a user in the socket's group (docker run --group-add $(stat -c %g /var/run/docker.sock), compose group_add) or as root"
	case errors.Is(err, syscall.ENOENT) || strings.Contains(err.Error(), "no such file or directory"):
		return "no Docker socket at " + host + ": mount it with " + mount +
			", or point DOCKER_HOST at the engine"
	case errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused"):
		return "the Docker engine at " + host + " refuses connections: is dockerd running? (mount " + mount +
			" or set DOCKER_HOST)"
	case strings.Contains(err.Error(), "events stream"):
		return "lost the Docker engine's events stream at " + host
	}
	return "cannot reach the Docker engine at " + host + " (mount " + mount + " or set DOCKER_HOST)"
}
