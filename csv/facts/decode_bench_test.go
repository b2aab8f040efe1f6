package facts

import (
	"encoding/json"
	"testing"
)

var benchLine = []byte(`{"root":"tree","path":"d0000/f0000001","format":"elf","size":14336,"digests":{"fsverity_sha256":"409ce75d528109e3d55954a4f2d86ac75e314e12c812717359582fc09861e95a","sha256":"bbfbad5013360f1c372ccc0983f58417330aa5b2c4ad6c8eff983bd4710779e7"},"signed":false,"signatures":[]}`)

func BenchmarkDecodeStrict(b *testing.B) {
	for b.Loop() {
		var r Record
		if err := strict(benchLine, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeUnmarshal(b *testing.B) {
	for b.Loop() {
		var r Record
		if err := json.Unmarshal(benchLine, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeFull(b *testing.B) {
	d := &Decoder{name: "x", cache: certCache{}, certs: &certTable{}}
	for b.Loop() {
		if _, err := d.Decode(benchLine, 2); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeFast(b *testing.B) {
	var l lexer
	for b.Loop() {
		var r Record
		if err := l.decodeRecord(benchLine, &r); err != nil {
			b.Fatal(err)
		}
	}
}
