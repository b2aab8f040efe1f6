// Package ctest helps the container readers' tests: generated trees,
// the real tools run as oracles, and collecting what a Walk yields.
package ctest

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/container"
)

// Need skips the test when a tool is not installed.
func Need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: %v", tool, err)
		}
	}
}

// Run runs a command in dir and returns its stdout; it fails the test when
// the command fails.
func Run(t testing.TB, dir string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// Fails reports whether the command exits with a status other than 0.
func Fails(dir, name string, args ...string) bool {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	return cmd.Run() != nil
}

// Bytes returns n pseudo-random bytes from seed, half of them compressible
// (runs of a repeated byte), like a binary's code and zero padding.
func Bytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; {
		run := min(1+r.IntN(512), n-i)
		if r.IntN(2) == 0 {
			c := byte(r.IntN(256))
			for j := range run {
				b[i+j] = c
			}
		} else {
			for j := range run {
				b[i+j] = byte(r.Uint32())
			}
		}
		i += run
	}
	return b
}

// Tree writes files (name: bytes) under dir.
func Tree(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for name, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Files reads the regular files under dir, by slash-separated relative
// name.
func Files(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	got := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		got[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// Limits is the default caps.
func Limits() *container.Limits { return container.DefaultLimits() }

// Got is what a Walk yielded.
type Got struct {
	Members []*container.Member
	Bytes   map[string][]byte // regular members without a Problem
	Err     error
}

// Walk walks b with r and collects every member, reading each one whole.
// It checks the interface's invariants: a member with a Problem has no
// reader and one without has, and a member read whole holds its declared
// size.
func Walk(t testing.TB, r container.Reader, b []byte, name string, lim *container.Limits) Got {
	t.Helper()
	g := Got{Bytes: map[string][]byte{}}
	g.Err = r.Walk(context.Background(), readerAt(b), int64(len(b)), name, lim, func(m *container.Member, body io.Reader) error {
		g.Members = append(g.Members, m)
		if m.Problem != nil {
			if body != nil {
				t.Errorf("member %s with Problem %v has a reader", m.Name, m.Problem)
			}
			return nil
		}
		if body == nil {
			t.Errorf("member %s without a Problem has no reader", m.Name)
			return nil
		}
		data, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		if m.Size >= 0 && int64(len(data)) != m.Size {
			t.Errorf("member %s: read %d bytes, declared %d", m.Name, len(data), m.Size)
		}
		g.Bytes[m.Name] = data
		return nil
	})
	return g
}

type readerAt []byte

func (b readerAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// ReaderAt is b as an io.ReaderAt.
func ReaderAt(b []byte) io.ReaderAt { return readerAt(b) }

// Same fails the test unless got and want hold the same names and bytes.
func Same(t testing.TB, got, want map[string][]byte) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("member %s (%d bytes) not yielded", name, len(w))
			continue
		}
		if string(g) != string(w) {
			t.Errorf("member %s: %d bytes yielded differ from the %d the tool extracts", name, len(g), len(w))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("member %s yielded, not extracted by the tool", name)
		}
	}
}

// Stdin runs a tool with b on its standard input and returns its output.
func Stdin(b []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(string(b))
	return cmd.Output()
}
