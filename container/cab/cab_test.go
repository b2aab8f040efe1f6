package cab

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"strconv"
	"testing"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/container/internal/ctest"
	"github.com/codesignval/csv/signing"
)

// TestPeer: cabinets gcab makes (uncompressed and MSZIP) yield every file,
// byte for byte as gcab -x extracts it and as it was put in.
func TestPeer(t *testing.T) {
	files := peerTree()
	for _, zip := range []bool{false, true} {
		t.Run(map[bool]string{false: "none", true: "mszip"}[zip], func(t *testing.T) {
			b, _ := gcabMake(t, files, zip)
			if !(Reader{}).Sniff(b[:min(len(b), container.SniffSize)], "out.cab") {
				t.Fatal("Sniff does not recognise gcab's cabinet")
			}
			g := ctest.Walk(t, Reader{}, b, "out.cab", ctest.Limits())
			if g.Err != nil {
				t.Fatalf("Walk: %v", g.Err)
			}
			for _, m := range g.Members {
				if m.Problem != nil {
					t.Errorf("member %s: %v", m.Name, m.Problem)
				}
			}
			want, ok := gcabExtract(t, b)
			if !ok {
				t.Fatal("gcab -x refuses its own cabinet")
			}
			ctest.Same(t, g.Bytes, want)
			ctest.Same(t, g.Bytes, files)
		})
	}
}

// TestPeerCorrupt: a cabinet cut short or with a changed byte in its data
// is refused by Walk as gcab -x refuses it; a changed byte gcab accepts is
// never a difference csv misses.
func TestPeerCorrupt(t *testing.T) {
	files := map[string][]byte{"a.dll": ctest.Bytes(7, 100_000), "b.exe": ctest.Bytes(8, 50_000)}
	for _, zip := range []bool{false, true} {
		b, _ := gcabMake(t, files, zip)
		cases := map[string][]byte{}
		cases["cut in the data"] = b[:len(b)-100]
		cases["cut in the files"] = b[:60]
		for _, at := range []int{len(b) / 2, len(b) - 10, 0x70} {
			c := bytes.Clone(b)
			c[at] ^= 0x40
			cases["byte "+strconv.Itoa(at)] = c
		}
		for name, c := range cases {
			g := ctest.Walk(t, Reader{}, c, "x.cab", ctest.Limits())
			_, gcabOK := gcabExtract(t, c)
			if gcabOK {
				t.Errorf("zip=%v %s: gcab -x accepts it", zip, name)
			}
			if g.Err == nil {
				t.Errorf("zip=%v %s: Walk accepts it", zip, name)
			} else if !errors.Is(g.Err, signing.ErrMalformed) {
				t.Errorf("zip=%v %s: %v, not ErrMalformed", zip, name, g.Err)
			}
		}
	}
}

// walkErr walks b and returns Walk's error and the members.
func walkErr(t *testing.T, b []byte, lim *container.Limits) ctest.Got {
	t.Helper()
	return ctest.Walk(t, Reader{}, b, "x.cab", lim)
}

func problem(g ctest.Got, name string) error {
	for _, m := range g.Members {
		if m.Name == name && m.Problem != nil {
			return m.Problem
		}
	}
	return errors.New("not yielded")
}

// TestHostile: crafted cabinets are refused or their members blocked,
// saying why, never yielded as judged bytes.
func TestHostile(t *testing.T) {
	data := ctest.Bytes(9, 100_000)
	ok := func() *tcab {
		return &tcab{folders: []tfolder{{comp: compMSZIP, blocks: mszipBlocks(t, data)}},
			files: []tfile{{name: "a.dll", size: 60_000}, {name: "b.dll", size: 40_000, off: 60_000}}}
	}
	// The builder itself: a good cabinet passes and gcab agrees.
	good := ok().bytes()
	g := walkErr(t, good, nil)
	if g.Err != nil || len(g.Bytes) != 2 || !bytes.Equal(g.Bytes["a.dll"], data[:60_000]) || !bytes.Equal(g.Bytes["b.dll"], data[60_000:]) {
		t.Fatalf("the good cabinet: %v, %d members", g.Err, len(g.Bytes))
	}
	if want, ok := gcabExtract(t, good); ok {
		ctest.Same(t, g.Bytes, want)
	} else if _, err := exec.LookPath("gcab"); err == nil {
		t.Fatal("gcab refuses the good cabinet")
	}

	type tc struct {
		name   string
		mk     func() []byte
		lim    *container.Limits
		err    error  // Walk's error, errors.Is
		member string // else: this member's Problem
		merr   error
	}
	malf := signing.ErrMalformed
	cases := []tc{
		{name: "file past its folder", mk: func() []byte {
			c := ok()
			c.files[1].size = 40_001
			return c.bytes()
		}, member: "b.dll", merr: malf},
		{name: "overlapping files", mk: func() []byte {
			c := ok()
			c.files[1].off = 50_000
			c.files[1].size = 10_000
			return c.bytes()
		}, member: "b.dll", merr: malf},
		{name: "folder of zero blocks", mk: func() []byte {
			c := ok()
			c.folders = append(c.folders, tfolder{comp: compNone})
			c.files = append(c.files, tfile{name: "c.dll", size: 10, folder: 1})
			return c.bytes()
		}, member: "c.dll", merr: malf},
		{name: "no such folder", mk: func() []byte {
			c := ok()
			c.files[1].folder = 5
			return c.bytes()
		}, member: "b.dll", merr: malf},
		{name: "LZX folder", mk: func() []byte {
			c := ok()
			c.folders[0].comp = compLZX | 15<<8
			return c.bytes()
		}, member: "a.dll", merr: container.ErrMember},
		{name: "Quantum folder", mk: func() []byte {
			c := ok()
			c.folders[0].comp = compQuantum
			return c.bytes()
		}, member: "b.dll", merr: container.ErrMember},
		{name: "continued into the next cabinet", mk: func() []byte {
			c := ok()
			c.flags = flagNext
			c.set = []byte("next.cab\x00disk2\x00")
			return c.bytes()
		}, member: "a.dll", merr: container.ErrMember},
		{name: "file continued from the previous cabinet", mk: func() []byte {
			c := ok()
			c.flags = flagPrev
			c.set = []byte("prev.cab\x00disk1\x00")
			c.files[0].folder = ifoldContinuedFromPrev
			return c.bytes()
		}, member: "a.dll", merr: container.ErrMember},
		{name: "block larger than 32 KiB", mk: func() []byte {
			c := ok()
			c.folders[0] = tfolder{comp: compNone, blocks: []tblock{{data: data[:40_000], usz: 40_000}, {data: data[40_000:100_000], usz: 60_000}}}
			return c.bytes()
		}, err: malf},
		{name: "MSZIP block over its declared size", mk: func() []byte {
			c := ok()
			c.folders[0].blocks[0].usz = 30_000
			return c.bytes()
		}, err: malf},
		{name: "bytes after an MSZIP block's deflate stream", mk: func() []byte {
			c := ok()
			b := &c.folders[0].blocks[1]
			b.data = append(bytes.Clone(b.data), "hidden"...)
			return c.bytes()
		}, err: malf},
		{name: "MSZIP block without CK", mk: func() []byte {
			c := ok()
			c.folders[0].blocks[0].data[1] = 'X'
			return c.bytes()
		}, err: malf},
		{name: "bad checksum", mk: func() []byte {
			c := ok()
			v := uint32(0x12345678)
			c.folders[0].blocks[2].csum = &v
			return c.bytes()
		}, err: malf},
		{name: "stored block with sizes that differ", mk: func() []byte {
			c := ok()
			c.folders[0] = tfolder{comp: compNone, blocks: storedBlocks(data)}
			c.folders[0].blocks[1].usz = 100
			return c.bytes()
		}, err: malf},
		{name: "bytes after the cabinet", mk: func() []byte { return append(ok().bytes(), "evil"...) }, err: malf},
		{name: "size past the file", mk: func() []byte { c := ok(); c.size = 1 << 30; return c.bytes() }, err: malf},
		{name: "dot-dot name", mk: func() []byte { c := ok(); c.files[0].name = `..\evil.dll`; return c.bytes() }, member: "../evil.dll", merr: container.ErrMember},
		{name: "repeated name", mk: func() []byte { c := ok(); c.files[1].name = "A.dll"; c.files[0].name = "A.dll"; return c.bytes() }, member: "A.dll", merr: container.ErrMember},
		{name: "name not ASCII, not UTF-8 flagged", mk: func() []byte { c := ok(); c.files[0].name = "\xe9.dll"; return c.bytes() }, member: "\xe9.dll", merr: container.ErrMember},
		{name: "name flagged UTF-8 that is not", mk: func() []byte {
			c := ok()
			c.files[0].name, c.files[0].attribs = "\xff.dll", attribNameIsUTF8
			return c.bytes()
		}, member: "\xff.dll", merr: container.ErrMember},
		{name: "more files than the cap", mk: func() []byte { return ok().bytes() }, lim: func() *container.Limits {
			l := ctest.Limits()
			l.MaxMembers = 1
			return l
		}(), err: container.ErrLimit},
		{name: "files declare more than the cap", mk: func() []byte {
			c := ok()
			c.files[0].size = 0xffffffff
			c.files = append(c.files, tfile{name: "c", size: 0xffffffff}, tfile{name: "d", size: 0xffffffff})
			return c.bytes()
		}, lim: func() *container.Limits { l := ctest.Limits(); l.MaxExpandedSize = 1 << 32; return l }(), err: container.ErrLimit},
		{name: "bomb", mk: func() []byte {
			zero := make([]byte, 64<<20)
			c := &tcab{folders: []tfolder{{comp: compMSZIP, blocks: mszipBlocks(t, zero)}},
				files: []tfile{{name: "z.bin", size: uint32(len(zero))}}}
			return c.bytes()
		}, lim: func() *container.Limits { l := ctest.Limits(); l.MaxRatio = 100; return l }(), err: container.ErrLimit},
		{name: "bomb over the expanded cap", mk: func() []byte {
			zero := make([]byte, 8<<20)
			c := &tcab{folders: []tfolder{{comp: compMSZIP, blocks: mszipBlocks(t, zero)}},
				files: []tfile{{name: "z.bin", size: uint32(len(zero))}, {name: "y.bin", size: 1 << 20}}}
			return c.bytes()
		}, lim: func() *container.Limits { l := ctest.Limits(); l.MaxExpandedSize = 4 << 20; return l }(), err: container.ErrLimit},
		{name: "bomb in bytes no file holds", mk: func() []byte {
			zero := make([]byte, 8<<20)
			c := &tcab{folders: []tfolder{{comp: compMSZIP, blocks: mszipBlocks(t, zero)}},
				files: []tfile{{name: "z.bin", size: 10}}}
			return c.bytes()
		}, lim: func() *container.Limits { l := ctest.Limits(); l.MaxExpandedSize = 4 << 20; return l }(), err: container.ErrLimit},
		{name: "header reserve over the spec", mk: func() []byte { c := ok(); c.reserve = make([]byte, 60001); return c.bytes() }, err: malf},
		{name: "unsigned reserve of 20 bytes naming no signature", mk: func() []byte {
			c := ok()
			c.reserve = make([]byte, 20)
			c.reserve[4], c.reserve[8] = 1, 1
			return c.bytes()
		}, err: malf},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.mk()
			lim := c.lim
			if lim == nil {
				lim = ctest.Limits()
			}
			g := walkErr(t, b, lim)
			if c.err != nil {
				if !errors.Is(g.Err, c.err) {
					t.Fatalf("Walk: %v, want %v", g.Err, c.err)
				}
				return
			}
			if g.Err != nil {
				t.Fatalf("Walk: %v", g.Err)
			}
			if p := problem(g, c.member); !errors.Is(p, c.merr) {
				t.Fatalf("member %s: %v, want %v (members %d)", c.member, p, c.merr, len(g.Members))
			}
			if _, ok := g.Bytes[c.member]; ok && c.name != "repeated name" {
				t.Fatalf("member %s yielded as bytes", c.member)
			}
		})
	}
}

// TestUnreadMember: a corrupt block in bytes the caller does not read is
// still found (Walk reads every folder to its end).
func TestUnreadMember(t *testing.T) {
	data := ctest.Bytes(10, 100_000)
	v := uint32(1)
	c := &tcab{folders: []tfolder{{comp: compMSZIP, blocks: mszipBlocks(t, data)}},
		files: []tfile{{name: "a.dll", size: 1000}}}
	c.folders[0].blocks[3].csum = &v
	b := c.bytes()
	err := Reader{}.Walk(context.Background(), ctest.ReaderAt(b), int64(len(b)), "x.cab", nil, func(m *container.Member, r io.Reader) error {
		return nil
	})
	if !errors.Is(err, signing.ErrMalformed) {
		t.Fatalf("Walk: %v", err)
	}
}

// TestChecksum: the checksum of a block gcab wrote is its header's.
func TestChecksum(t *testing.T) {
	b, _ := gcabMake(t, map[string][]byte{"a": ctest.Bytes(11, 5000)}, true)
	h, err := ReadHeader(ctest.ReaderAt(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	off := int(le32(b[h.FoldersOffset:]))
	cb := int(le16(b[off+4:]))
	if got, want := Checksum(b[off+4:off+8], Checksum(b[off+8:off+8+cb], 0)), le32(b[off:]); got != want || want == 0 {
		t.Fatalf("checksum %08x, gcab wrote %08x", got, want)
	}
}

// TestManyFolders: 65,535 folders of no blocks (a 512 KiB cabinet) cost
// one set of buffers, not one per folder (100 KiB each: 6.5 GB).
func TestManyFolders(t *testing.T) {
	c := &tcab{folders: make([]tfolder, 65535)}
	c.files = []tfile{{name: "a", size: 0, folder: 65532}}
	b := c.bytes()
	var got int64
	allocs := testing.AllocsPerRun(1, func() {
		Reader{}.Walk(context.Background(), ctest.ReaderAt(b), int64(len(b)), "x.cab", nil, func(m *container.Member, r io.Reader) error {
			if m.Problem != nil {
				t.Errorf("member %s: %v", m.Name, m.Problem)
				return nil
			}
			n, _ := io.Copy(io.Discard, r)
			got += n + 1
			return nil
		})
	})
	if got == 0 {
		t.Fatal("member a not yielded")
	}
	if allocs > 1000 {
		t.Fatalf("%v allocations for 65,535 empty folders", allocs)
	}
}
