package discovery

import (
	"net"
	"slices"
	"strings"

	"github.com/rs/zerolog"

	"github.com/wharflb/wharf/lb"
)

// An engine restarted with live-restore has been seen to give a new
// container an address that a running one still held. Requests to that
// address reach one of them, which one is up to the network, so neither
// is routed while both claim it; the clash is logged once, naming both,
// and the one left is routed again once the other lets go of the address
// (it stops, leaves the network or is given another address).

// claim is one container holding an address on the network: a routable
// peer, or one whose port is being probed.
type claim struct {
	backend  lb.Backend
	routable bool
}

// addressClaims remembers the clashes it logged, so that each is logged
// once while it lasts and once when it ends. It belongs to the goroutine
// of its watcher.
type addressClaims struct {
	log     zerolog.Logger
	clashes map[string]string // address → the names claiming it, as logged
}

// routable returns the backends of the routable claims whose address no
// other claim holds, and logs the clashes that began or ended.
func (a *addressClaims) routable(claims []claim) []lb.Backend {
	byHost := map[string][]string{}
	for _, c := range claims {
		h := addrHost(c.backend.Addr)
		byHost[h] = append(byHost[h], c.backend.Name)
	}
	var list []lb.Backend
	for _, c := range claims {
		if c.routable && len(byHost[addrHost(c.backend.Addr)]) == 1 {
			list = append(list, c.backend)
		}
	}
	now := map[string]string{}
	for h, names := range byHost {
		if len(names) < 2 {
			continue
		}
		slices.Sort(names)
		now[h] = strings.Join(names, ", ")
		if a.clashes[h] != now[h] {
			a.log.Warn().Str("address", h).Strs("containers", names).
				Msgf("containers %s claim one address, %s, on the network; none of them is routed until only one does", now[h], h)
		}
	}
	for h := range a.clashes {
		if _, ok := now[h]; !ok {
			a.log.Info().Str("address", h).Msgf("address %s is claimed by one container again", h)
		}
	}
	a.clashes = now
	return list
}

// addrHost is the IP address of a host:port address.
func addrHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
