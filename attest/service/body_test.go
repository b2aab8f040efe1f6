package service

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// trickle yields its bytes one Read at a time, then EOF: a slow client.
type trickle struct {
	b []byte
	n int
}

func (t *trickle) Read(p []byte) (int, error) {
	if len(t.b) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), t.n, len(t.b))
	copy(p, t.b[:n])
	t.b = t.b[n:]
	return n, nil
}

// TestReadGrowing: a body's buffer starts small whatever the client
// declares, and grows with what arrives, never past what was declared
// (plus one byte to see the end).
func TestReadGrowing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    int   // bytes sent
		hint    int64 // declared (or the cap)
		maxCap  int
		trickle int
	}{
		{"declares 4 MiB, sends 1 byte", 1, 4 << 20, initialBodyBuffer, 1},
		{"declares 4 MiB, sends 10 KiB slowly", 10 << 10, 4 << 20, initialBodyBuffer, 100},
		{"declares 200 KiB, sends it", 200 << 10, 200 << 10, 200<<10 + 1, 1 << 20},
		{"small, exact", 300, 300, 301, 1 << 20},
		{"empty", 0, 0, 1, 1},
		{"chunked, up to the cap", 100 << 10, 4 << 20, 128 << 10, 4 << 10},
		{"more than declared", 1000, 10, 1 << 12, 1 << 20}, // MaxBytesReader stops this in the service
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := bytes.Repeat([]byte{'x'}, tc.body)
			var held int64
			got, err := readGrowing(&trickle{b: body, n: tc.trickle}, tc.hint, func(n int64) bool { held += n; return true })
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("read %d bytes, err %v", len(got), err)
			}
			if held != int64(cap(got)) {
				t.Errorf("reserved %d bytes for a buffer of %d", held, cap(got))
			}
			if cap(got) > tc.maxCap {
				t.Errorf("buffer of %d bytes for a body of %d (declared %d), want at most %d", cap(got), tc.body, tc.hint, tc.maxCap)
			}
		})
	}
}

// TestReadGrowingBudget: a growth the budget has no room for stops the
// read; nothing past what was reserved is allocated.
func TestReadGrowingBudget(t *testing.T) {
	body := bytes.Repeat([]byte{'x'}, 300<<10)
	var held int64
	got, err := readGrowing(&trickle{b: body, n: 1 << 20}, 4<<20, func(n int64) bool {
		if held+n > 200<<10 {
			return false
		}
		held += n
		return true
	})
	if !errors.Is(err, errNoBodyBudget) || got != nil || held > 200<<10 {
		t.Fatalf("err %v, %d bytes, %d held", err, len(got), held)
	}
	if _, err := readGrowing(&trickle{b: body, n: 1}, 4<<20, func(int64) bool { return false }); !errors.Is(err, errNoBodyBudget) {
		t.Fatalf("no room at all: %v", err)
	}
}
