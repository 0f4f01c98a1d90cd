package main

import (
	"fmt"
	"net/http"
	"strconv"
)

// Sizes of action=sample.
const (
	DefaultSampleSize = 10 << 10
	MaxSampleSize     = 1 << 20
)

// sampleDoc is one sample answer kept for the next request of the same
// size, which is usually all a benchmark asks for.
type sampleDoc struct {
	size int
	body []byte
}

// serveSample answers action=sample: a JSON document of exactly size bytes
// (the size parameter, DefaultSampleSize without it) listing catalogue
// items, with the text of a typical JSON API: repeated keys, short strings,
// numbers. It is what a benchmark of response compression fetches. The
// same size gives the same document, on every server.
func (s *Server) serveSample(w http.ResponseWriter, r *http.Request) {
	size := DefaultSampleSize
	if v := r.FormValue("size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < minSampleSize || n > MaxSampleSize {
			msg := fmt.Sprintf("bad size %q: want a byte count from %d to %d", v, minSampleSize, MaxSampleSize)
			s.writeJSON(w, http.StatusBadRequest, failure{Message: msg, Server: s.name})
			return
		}
		size = n
	}
	doc := s.sample.Load()
	if doc == nil || doc.size != size {
		doc = &sampleDoc{size: size, body: sampleBody(size)}
		s.sample.Store(doc)
	}
	w.Header().Set("Content-Length", strconv.Itoa(size))
	w.WriteHeader(http.StatusOK)
	w.Write(doc.body)
}

const (
	sampleHead = `{"IsSuccess":true,"Data":[`
	sampleTail = `],"Pad":""}`
	// minSampleSize is the document with no item and no padding.
	minSampleSize = len(sampleHead) + len(sampleTail)
)

// sampleBody builds the document of exactly size bytes: as many items as
// fit, then spaces in Pad for the rest.
func sampleBody(size int) []byte {
	b := make([]byte, 0, size)
	b = append(b, sampleHead...)
	var item []byte
	for i := 0; ; i++ {
		item = appendSampleItem(item[:0], i)
		if len(b)+len(item)+1+len(sampleTail) > size {
			break
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, item...)
	}
	b = append(b, sampleTail[:len(sampleTail)-2]...)
	for len(b) < size-2 {
		b = append(b, ' ')
	}
	return append(b, `"}`...)
}

func appendSampleItem(b []byte, i int) []byte {
	h := uint32(i+1) * 2654435761 // Knuth's multiplicative hash: varied, repeatable
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, int64(1000+i), 10)
	b = append(b, `,"sku":"`...)
	b = strconv.AppendUint(b, uint64(h), 16)
	b = append(b, `","name":"Item `...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `","price":`...)
	b = strconv.AppendInt(b, int64(h%10000), 10)
	b = append(b, `,"currency":"EUR","stock":`...)
	b = strconv.AppendInt(b, int64(h>>20), 10)
	b = append(b, `,"active":`...)
	b = strconv.AppendBool(b, h&1 == 0)
	return append(b, '}')
}
