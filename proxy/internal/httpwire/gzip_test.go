package httpwire

import "testing"

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		fields []string // Accept-Encoding values, one a field line
		want   bool
	}{
		{nil, false},
		{[]string{"gzip"}, true},
		{[]string{"gzip, deflate, br"}, true},
		{[]string{"deflate, br"}, false},
		{[]string{"identity"}, false},
		{[]string{"GZip"}, true},
		{[]string{"x-gzip"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip ; q=0.000"}, false},
		{[]string{"gzip;q=0.001"}, true},
		{[]string{"gzip;Q=1.0"}, true},
		{[]string{"gzip;q=1.5"}, false}, // not a qvalue: refused
		{[]string{"gzip;q=0.0001"}, false},
		{[]string{"gzip;q="}, false},
		{[]string{"gzip;level=1"}, true},
		{[]string{"*"}, true},
		{[]string{"*;q=0"}, false},
		{[]string{"br", "gzip"}, true}, // every field line counts
		{[]string{"gzip;q=0", "*"}, false},
		{[]string{"*", "gzip;q=0"}, false},
		{[]string{"x-gzip;q=0, gzip"}, true},
		{[]string{"gzipped"}, false},
		{[]string{""}, false},
	}
	for _, tt := range tests {
		var hs Headers
		for _, v := range tt.fields {
			hs = append(hs, Header{Name: []byte("Accept-Encoding"), Value: []byte(v)})
		}
		hs = append(hs, Header{Name: []byte("X-Other"), Value: []byte("gzip")})
		if got := AcceptsGzip(hs); got != tt.want {
			t.Errorf("AcceptsGzip(%q) = %v, want %v", tt.fields, got, tt.want)
		}
	}
}

func TestScanGzipFields(t *testing.T) {
	in := "HTTP/1.1 200 OK\r\nContent-Type: Application/JSON ; charset=utf-8\r\nContent-Encoding: \r\nCache-Control: max-age=1, No-Transform\r\nContent-Range: bytes 0-1/2\r\nContent-Length: 2\r\n\r\n"
	var p Parser
	var r Response
	if err := p.ParseResponse(&r, []byte(in), false); err != nil {
		t.Fatal(err)
	}
	f := ScanGzipFields(&r)
	if string(f.ContentType) != "Application/JSON" || f.Encoded || !f.NoTransform || !f.Ranged {
		t.Fatalf("%+v", f)
	}
}
