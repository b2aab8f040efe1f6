package cab

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/container/internal/ctest"
)

// peerTree is the tree the peer tests put in cabinets: sizes from empty to
// several folders' worth of blocks, names with directories.
func peerTree() map[string][]byte {
	return map[string][]byte{
		"empty.txt":        {},
		"one":              {'x'},
		"lib/x.dll":        ctest.Bytes(1, 70_000),
		"lib/sub/a b.dll":  ctest.Bytes(2, 300_000),
		"bin/tool.exe":     ctest.Bytes(3, 1_500_000),
		"docs/zeros.bin":   make([]byte, 200_000),
		"deep/a/b/c/f.sys": ctest.Bytes(4, 32768),
		"lib/é.dll":        ctest.Bytes(5, 1000), // gcab flags the name UTF-8
	}
}

// gcabMake writes files to a directory and makes a cabinet of them with
// gcab -c (MSZIP with zip), returning its bytes and path.
func gcabMake(t testing.TB, files map[string][]byte, zip bool) ([]byte, string) {
	t.Helper()
	ctest.Need(t, "gcab")
	dir := t.TempDir()
	src := filepath.Join(dir, "in")
	ctest.Tree(t, src, files)
	args := []string{"-c"}
	if zip {
		args = append(args, "-z")
	}
	out := filepath.Join(dir, "out.cab")
	args = append(args, out)
	for name := range files {
		args = append(args, name)
	}
	ctest.Run(t, src, "gcab", args...)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b, out
}

// gcabExtract extracts the cabinet b with gcab -x and returns its files,
// or ok false when gcab refuses it.
func gcabExtract(t testing.TB, b []byte) (map[string][]byte, bool) {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "x.cab")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if ctest.Fails(dir, "gcab", "-x", "-C", out, p) {
		return nil, false
	}
	return ctest.Files(t, out), true
}

// A cabinet built in Go, for the hostile cases gcab does not write.
type tcab struct {
	flags      uint16
	reserve    []byte // header reserve (flag set when not nil)
	folders    []tfolder
	files      []tfile
	size       int64 // cbCabinet, when not zero (else the real size)
	noChecksum bool
	set        []byte // the set's names after the reserve (flagPrev, flagNext)
}

type tfolder struct {
	comp   uint16
	blocks []tblock
}

type tblock struct {
	data []byte // stored bytes (for MSZIP: CK + deflate)
	usz  int    // cbUncomp
	csum *uint32
}

type tfile struct {
	name    string
	size    uint32
	off     uint32
	folder  uint16
	attribs uint16
}

// storedBlocks cuts data into uncompressed blocks of 32 KiB.
func storedBlocks(data []byte) []tblock {
	var bs []tblock
	for len(data) > 0 {
		n := min(len(data), 32768)
		bs = append(bs, tblock{data: data[:n], usz: n})
		data = data[n:]
	}
	return bs
}

// mszipBlocks compresses data into MSZIP blocks of 32 KiB, each a deflate
// stream with the previous 32 KiB as its dictionary.
func mszipBlocks(t testing.TB, data []byte) []tblock {
	t.Helper()
	var bs []tblock
	var hist []byte
	for len(data) > 0 {
		n := min(len(data), 32768)
		var buf bytes.Buffer
		buf.WriteString("CK")
		w, err := flate.NewWriterDict(&buf, flate.BestCompression, hist)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data[:n])
		w.Close()
		bs = append(bs, tblock{data: buf.Bytes(), usz: n})
		hist = data[max(0, n-32768):n]
		data = data[n:]
	}
	return bs
}

func (c *tcab) bytes() []byte {
	le16 := func(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
	le32 := func(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
	flags := c.flags
	if c.reserve != nil {
		flags |= flagReserve
	}
	hdr := 36
	if c.reserve != nil {
		hdr += 4 + len(c.reserve)
	}
	hdr += len(c.set)
	filesOff := hdr + 8*len(c.folders)
	var files []byte
	for _, f := range c.files {
		files = le32(files, f.size)
		files = le32(files, f.off)
		files = le16(files, f.folder)
		files = le16(files, 0x5a21)
		files = le16(files, 0x6000)
		files = le16(files, f.attribs)
		files = append(append(files, f.name...), 0)
	}
	dataOff := filesOff + len(files)
	var folders, data []byte
	for _, fo := range c.folders {
		folders = le32(folders, uint32(dataOff+len(data)))
		folders = le16(folders, uint16(len(fo.blocks)))
		folders = le16(folders, fo.comp)
		for _, b := range fo.blocks {
			var sizes []byte
			sizes = le16(sizes, uint16(len(b.data)))
			sizes = le16(sizes, uint16(b.usz))
			sum := Checksum(sizes, Checksum(b.data, 0))
			if c.noChecksum {
				sum = 0
			}
			if b.csum != nil {
				sum = *b.csum
			}
			data = le32(data, sum)
			data = append(append(data, sizes...), b.data...)
		}
	}
	total := dataOff + len(data)
	size := uint32(total)
	if c.size != 0 {
		size = uint32(c.size)
	}
	var out []byte
	out = append(out, "MSCF"...)
	out = le32(out, 0)
	out = le32(out, size)
	out = le32(out, 0)
	out = le32(out, uint32(filesOff))
	out = le32(out, 0)
	out = append(out, 3, 1)
	out = le16(out, uint16(len(c.folders)))
	out = le16(out, uint16(len(c.files)))
	out = le16(out, flags)
	out = le16(out, 0)
	out = le16(out, 0)
	if c.reserve != nil {
		out = le16(out, uint16(len(c.reserve)))
		out = append(out, 0, 0)
		out = append(out, c.reserve...)
	}
	out = append(out, c.set...)
	out = append(out, folders...)
	out = append(out, files...)
	return append(out, data...)
}
