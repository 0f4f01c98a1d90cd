package lb

import (
	"fmt"
	"testing"
)

func benchBackends(n int, weighted bool) []Backend {
	list := make([]Backend, n)
	for i := range list {
		w := 1
		if weighted {
			w = 1 + i%5
		}
		list[i] = be(fmt.Sprintf("c%04d", i), w)
	}
	return list
}

// BenchmarkPick shows that picking costs the same for 3 and 1,000 peers and
// allocates nothing.
func BenchmarkPick(b *testing.B) {
	for _, n := range []int{3, 100, 1000} {
		for _, weighted := range []bool{false, true} {
			b.Run(fmt.Sprintf("peers=%d/weighted=%v", n, weighted), func(b *testing.B) {
				bal := New()
				bal.Update("bench", benchBackends(n, weighted))
				now := bal.Now()
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						p := bal.Table().Route("localhost", "/webtest")
						if p.Pick(now, 0, nil) == nil {
							b.Fatal("no peer")
						}
					}
				})
			})
		}
	}
}

// BenchmarkPickAndReport is one request's whole interaction with lb.
func BenchmarkPickAndReport(b *testing.B) {
	bal := New()
	bal.Update("bench", benchBackends(3, true))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		now := bal.Now()
		pe := bal.Table().Route("localhost", "/webtest").Pick(now, 0, nil)
		pe.Begin()
		pe.End(false, now)
	}
}

// BenchmarkApplyOneChange applies a one-container change to a table of
// 1,000 containers (spread over 50 services, as a large host would be).
func BenchmarkApplyOneChange(b *testing.B) {
	for _, services := range []int{1, 50} {
		b.Run(fmt.Sprintf("services=%d", services), func(b *testing.B) {
			list := benchBackends(1000, true)
			for i := range list {
				list[i].Service = fmt.Sprintf("svc%02d", i%services)
				list[i].Rules.PathPrefix = fmt.Sprintf("/svc%02d", i%services)
			}
			bal := New()
			bal.Update("bench", list)
			alt := append([]Backend(nil), list...)
			alt[500].Weight = 7
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%2 == 0 {
					bal.Update("bench", alt)
				} else {
					bal.Update("bench", list)
				}
			}
		})
	}
}
