package zip

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/codesignval/csv/container"
)

// got is what Walk yielded for one member.
type got struct {
	m    container.Member
	data []byte
	err  error // the error reading its bytes
}

// walk runs Walk over b and returns the members and Walk's error.
func walk(t testing.TB, b []byte, lim *container.Limits) ([]got, error) {
	t.Helper()
	var out []got
	err := Reader{}.Walk(context.Background(), bytes.NewReader(b), int64(len(b)), "t.zip", lim, func(m *container.Member, r io.Reader) error {
		g := got{m: *m}
		if (r == nil) != (m.Problem != nil) {
			t.Errorf("member %q: reader %v with problem %v", m.Name, r != nil, m.Problem)
		}
		if r != nil {
			g.data, g.err = io.ReadAll(r)
		}
		out = append(out, g)
		return nil
	})
	return out, err
}

// byName returns the members yielded under name.
func byName(gs []got, name string) []got {
	var out []got
	for _, g := range gs {
		if g.m.Name == name {
			out = append(out, g)
		}
	}
	return out
}

// binaryLike returns n bytes that compress as binaries do (about 2:1): runs
// of a small alphabet, zeros and random bytes.
func binaryLike(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, 0, n)
	for len(b) < n {
		k := 1 + r.IntN(256)
		switch r.IntN(4) {
		case 0:
			b = append(b, make([]byte, k)...)
		case 1:
			for range k {
				b = append(b, byte(r.Uint32()))
			}
		default:
			for range k {
				b = append(b, "\x48\x89\xe5\x8b\x45\xfc\xc3\x90\x00\x01"[r.IntN(10)])
			}
		}
	}
	return b[:n]
}

// need skips the test when a tool is missing.
func need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: %v", tool, err)
		}
	}
}

// run runs a command in dir and returns its standard output.
func run(t testing.TB, dir string, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, stderr.Bytes())
	}
	return out
}

// tree writes files (name to content) under a new directory.
func tree(t testing.TB, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// python runs a python3 script with the output path as argv[1] and returns
// the file it wrote.
func python(t testing.TB, script string) []byte {
	t.Helper()
	need(t, "python3")
	out := filepath.Join(t.TempDir(), "out.zip")
	run(t, "", nil, "python3", "-c", script, out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// craft builds zips byte by byte for the hostile cases the tools do not
// make. Each entry's fields can be altered before or after layout.
type craftEntry struct {
	name       string
	cdName     string // when set, the central directory's name differs
	data       []byte
	method     uint16
	flags      uint16
	cdFlags    *uint16
	crc        *uint32 // overrides the CRC in both headers
	localCRC   *uint32
	usize      *uint32 // overrides the uncompressed size in both headers
	creator    uint16
	ext        uint32
	extra      []byte // central directory extra
	localExtra []byte
	desc       []byte // bytes written after the data (a data descriptor)
	compTail   []byte // bytes appended to the compressed data
	unlisted   bool   // written as a local header, left out of the central directory
	offset     *uint32
}

type craftOpts struct {
	prefix, between, trailer []byte
	beforeCD                 []byte
	comment                  []byte
	disk                     uint16
	entries                  *uint16
}

var deflaters = sync.Pool{New: func() any { w, _ := flate.NewWriter(nil, 6); return w }}

func deflate(b []byte) []byte {
	var buf bytes.Buffer
	w := deflaters.Get().(*flate.Writer)
	w.Reset(&buf)
	w.Write(b)
	w.Close()
	deflaters.Put(w)
	return buf.Bytes()
}

func craft(es []craftEntry, o craftOpts) []byte {
	le := binary.LittleEndian
	var out []byte
	out = append(out, o.prefix...)
	var cd []byte
	n := uint16(0)
	for _, e := range es {
		comp := e.data
		if e.method == methodDeflate {
			comp = deflate(e.data)
		}
		comp = append(bytes.Clone(comp), e.compTail...)
		crc := crc32.ChecksumIEEE(e.data)
		if e.crc != nil {
			crc = *e.crc
		}
		lcrc := crc
		if e.localCRC != nil {
			lcrc = *e.localCRC
		}
		usize := uint32(len(e.data))
		if e.usize != nil {
			usize = *e.usize
		}
		off := uint32(len(out))
		if e.offset != nil {
			off = *e.offset
		}
		h := make([]byte, localLen)
		le.PutUint32(h, sigLocal)
		le.PutUint16(h[4:], 20)
		le.PutUint16(h[6:], e.flags)
		le.PutUint16(h[8:], e.method)
		if e.flags&flagDesc == 0 {
			le.PutUint32(h[14:], lcrc)
			le.PutUint32(h[18:], uint32(len(comp)))
			le.PutUint32(h[22:], usize)
		}
		le.PutUint16(h[26:], uint16(len(e.name)))
		le.PutUint16(h[28:], uint16(len(e.localExtra)))
		out = append(out, h...)
		out = append(out, e.name...)
		out = append(out, e.localExtra...)
		out = append(out, comp...)
		out = append(out, e.desc...)
		out = append(out, o.between...)
		if e.unlisted {
			continue
		}
		n++
		name := e.name
		if e.cdName != "" {
			name = e.cdName
		}
		flags := e.flags
		if e.cdFlags != nil {
			flags = *e.cdFlags
		}
		c := make([]byte, centralLen)
		le.PutUint32(c, sigCentral)
		le.PutUint16(c[4:], e.creator)
		le.PutUint16(c[6:], 20)
		le.PutUint16(c[8:], flags)
		le.PutUint16(c[10:], e.method)
		le.PutUint32(c[16:], crc)
		le.PutUint32(c[20:], uint32(len(comp)))
		le.PutUint32(c[24:], usize)
		le.PutUint16(c[28:], uint16(len(name)))
		le.PutUint16(c[30:], uint16(len(e.extra)))
		le.PutUint32(c[38:], e.ext)
		le.PutUint32(c[42:], off)
		cd = append(cd, c...)
		cd = append(cd, name...)
		cd = append(cd, e.extra...)
	}
	if o.entries != nil {
		n = *o.entries
	}
	out = append(out, o.beforeCD...)
	cdOff := len(out)
	out = append(out, cd...)
	end := make([]byte, endLen)
	le.PutUint32(end, sigEnd)
	le.PutUint16(end[4:], o.disk)
	le.PutUint16(end[8:], n)
	le.PutUint16(end[10:], n)
	le.PutUint32(end[12:], uint32(len(cd)))
	le.PutUint32(end[16:], uint32(cdOff))
	le.PutUint16(end[20:], uint16(len(o.comment)))
	out = append(out, end...)
	out = append(out, o.comment...)
	return append(out, o.trailer...)
}

func u16(v uint16) *uint16 { return &v }
func u32(v uint32) *uint32 { return &v }
