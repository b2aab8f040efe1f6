package ps_test

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/codesignval/csv/signing/authenticode/ps"
)

// BenchmarkDigester is the SIP hash of a 1 MiB script, against the flat
// SHA256 of the same bytes: the cost of transcoding UTF-8 to UTF-16LE
// (which hashes twice the bytes) and of checking the text.
func BenchmarkDigester(b *testing.B) {
	text := []byte(strings.Repeat("Write-Host 'hello, world' # a line of a script\r\n", 1<<20/48))
	wide := []byte{0xff, 0xfe}
	for _, c := range text {
		wide = append(wide, c, 0)
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{{"utf8", text}, {"utf16", wide}} {
		s, err := ps.Parse(bytes.NewReader(tc.data), int64(len(tc.data)), ps.SyntaxHash)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name+"/sip", func(b *testing.B) {
			b.SetBytes(int64(len(tc.data)))
			for b.Loop() {
				d := s.NewDigester(sha256.New())
				for i := 0; i < len(tc.data); i += 256 << 10 {
					d.Write(tc.data[i:min(i+256<<10, len(tc.data))])
				}
				if err := d.Close(); err != nil || d.Err() != nil {
					b.Fatal(err, d.Err())
				}
			}
		})
		b.Run(tc.name+"/sha256", func(b *testing.B) {
			b.SetBytes(int64(len(tc.data)))
			for b.Loop() {
				h := sha256.New()
				h.Write(tc.data)
				h.Sum(nil)
			}
		})
	}
}
