package rpm

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
)

// Packages crafted in Go: the shapes rpmbuild never writes.

type tagv struct {
	tag, typ, count uint32
	data            []byte
}

func tStr(tag uint32, s string) tagv { return tagv{tag, typeString, 1, append([]byte(s), 0)} }
func tI32(tag, v uint32) tagv        { return tagv{tag, typeInt32, 1, binary.BigEndian.AppendUint32(nil, v)} }
func tStrs(tag uint32, s ...string) tagv {
	var b []byte
	for _, x := range s {
		b = append(append(b, x...), 0)
	}
	return tagv{tag, typeStringArray, uint32(len(s)), b}
}

func encodeHeader(tags []tagv) []byte {
	var index, store []byte
	for _, t := range tags {
		if a := fixedSize(t.typ); a > 1 {
			for int64(len(store))%a != 0 {
				store = append(store, 0)
			}
		}
		for _, v := range []uint32{t.tag, t.typ, uint32(len(store)), t.count} {
			index = binary.BigEndian.AppendUint32(index, v)
		}
		store = append(store, t.data...)
	}
	b := append([]byte(nil), headerMagic...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(tags)))
	b = binary.BigEndian.AppendUint32(b, uint32(len(store)))
	return append(append(b, index...), store...)
}

// mkRPM assembles lead, headers and payload; the signature header gets
// the main header's SHA-256 unless sig says otherwise.
func mkRPM(sig, main []tagv, payload []byte) []byte {
	mh := encodeHeader(main)
	if sig == nil {
		d := sha256.Sum256(mh)
		sig = []tagv{tStr(sigTagSHA256, hex.EncodeToString(d[:]))}
	}
	lead := make([]byte, leadSize)
	copy(lead, leadMagic)
	lead[4], lead[79] = 3, 5
	b := append(lead, encodeHeader(sig)...)
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	return append(append(b, mh...), payload...)
}

type ent struct {
	name        string
	mode        uint32
	data        []byte
	nlink, ino  uint32
	crc         bool
	badCheck    bool
	magic       string
	nameSizeAdd int
}

func cpioArchive(ents []ent, trailer bool) []byte {
	var b []byte
	add := func(e ent) {
		magic := "070701"
		if e.crc {
			magic = "070702"
		}
		if e.magic != "" {
			magic = e.magic
		}
		var sum uint32
		if e.crc {
			for _, c := range e.data {
				sum += uint32(c)
			}
			if e.badCheck {
				sum++
			}
		}
		if e.nlink == 0 {
			e.nlink = 1
		}
		b = append(b, magic...)
		for _, v := range []uint32{e.ino, e.mode, 0, 0, e.nlink, 0, uint32(len(e.data)), 0, 0, 0, 0,
			uint32(len(e.name) + 1 + e.nameSizeAdd), sum} {
			b = append(b, fmt.Sprintf("%08x", v)...)
		}
		b = append(append(b, e.name...), 0)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		b = append(b, e.data...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	for i, e := range ents {
		if e.ino == 0 {
			e.ino = uint32(i + 1)
		}
		add(e)
	}
	if trailer {
		add(ent{name: cpioTrailer})
	}
	return b
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

func gzMain(extra ...tagv) []tagv {
	return append([]tagv{tStr(tagPayloadFormat, "cpio"), tStr(tagPayloadCompressor, "gzip")}, extra...)
}

const reg = 0o100755

// hf is a file of the main header's list.
type hf struct {
	name string
	mode uint16
	size uint32
}

// fileTags are the main header's file list tags (rpm 4's compressed file
// names) for files.
func fileTags(files ...hf) []tagv {
	var dirs, bases []string
	var idx, modes, sizes []byte
	for _, f := range files {
		d, b := f.name[:strings.LastIndexByte(f.name, '/')+1], f.name[strings.LastIndexByte(f.name, '/')+1:]
		i := slices.Index(dirs, d)
		if i < 0 {
			i = len(dirs)
			dirs = append(dirs, d)
		}
		bases = append(bases, b)
		idx = binary.BigEndian.AppendUint32(idx, uint32(i))
		modes = binary.BigEndian.AppendUint16(modes, f.mode)
		sizes = binary.BigEndian.AppendUint32(sizes, f.size)
	}
	n := uint32(len(files))
	return []tagv{tStrs(tagBaseNames, bases...), tStrs(tagDirNames, dirs...), {tagDirIndexes, typeInt32, n, idx},
		{tagFileModes, typeInt16, n, modes}, {tagFileSizes, typeInt32, n, sizes}}
}

func TestHostile(t *testing.T) {
	file := ent{name: "./usr/bin/x", mode: reg, data: []byte("MZ some bytes")}
	okPayload := gz(cpioArchive([]ent{file}, true))
	plainDigest := func(b []byte) string { d := sha256.Sum256(b); return hex.EncodeToString(d[:]) }
	zeros := gz(cpioArchive([]ent{{name: "z", mode: reg, data: make([]byte, 4<<20)}}, true))
	tests := []struct {
		name    string
		pkg     []byte
		lim     func(*container.Limits)
		wantErr error            // Walk's error, errors.Is
		problem map[string]error // member name -> Problem, errors.Is (nil: clean)
	}{
		{name: "ok", pkg: mkRPM(nil, gzMain(), okPayload), problem: map[string]error{"usr/bin/x": nil}},
		// rpm installs the header's files, of the header's types, from
		// the payload entries of their names: a directory entry carrying
		// an ELF, which cpio makes a directory, rpm -i installs as the
		// regular file its header lists.
		{name: "file list agrees", problem: map[string]error{"usr/bin/x": nil, "usr/bin/h1": nil, "usr/bin/h2": nil},
			pkg: mkRPM(nil, gzMain(fileTags(hf{"/usr/bin", 0o40755, 0}, hf{"/usr/bin/x", reg, 13}, hf{"/usr/bin/h1", reg, 2}, hf{"/usr/bin/h2", reg, 2})...),
				gz(cpioArchive([]ent{{name: "./usr/bin", mode: 0o40755}, file,
					{name: "./usr/bin/h1", mode: reg, nlink: 2, ino: 9}, {name: "./usr/bin/h2", mode: reg, nlink: 2, ino: 9, data: []byte("h!")}}, true)))},
		{name: "directory entry the header lists as a file", wantErr: signing.ErrMalformed,
			pkg: mkRPM(nil, gzMain(fileTags(hf{"/usr/bin/x", reg, 4})...),
				gz(cpioArchive([]ent{{name: "./usr/bin/x", mode: 0o40755, data: []byte("\x7fELF")}}, true)))},
		{name: "symbolic link entry the header lists as a file", wantErr: signing.ErrMalformed,
			pkg: mkRPM(nil, gzMain(fileTags(hf{"/usr/bin/x", reg, 4})...),
				gz(cpioArchive([]ent{{name: "./usr/bin/x", mode: 0o120777, data: []byte("\x7fELF")}}, true)))},
		{name: "entry not in the header", wantErr: signing.ErrMalformed,
			pkg: mkRPM(nil, gzMain(fileTags(hf{"/usr/bin/y", reg, 13})...), okPayload)},
		{name: "entry of another size than the header's", wantErr: signing.ErrMalformed,
			pkg: mkRPM(nil, gzMain(fileTags(hf{"/usr/bin/x", reg, 12})...), okPayload)},
		{name: "setuid", pkg: mkRPM(nil, gzMain(), gz(cpioArchive([]ent{{name: "su", mode: 0o104755, data: []byte("x")}}, true))),
			problem: map[string]error{"su": nil}},
		{name: "short lead", pkg: leadMagic, wantErr: signing.ErrMalformed},
		{name: "index entries over the cap", wantErr: container.ErrLimit, pkg: func() []byte {
			b := mkRPM(nil, gzMain(), okPayload)
			binary.BigEndian.PutUint32(b[leadSize+8:], limits.MaxRPMHeaderEntries+1)
			return b
		}()},
		{name: "data over the cap", wantErr: container.ErrLimit, pkg: func() []byte {
			b := mkRPM(nil, gzMain(), okPayload)
			binary.BigEndian.PutUint32(b[leadSize+12:], limits.MaxRPMHeaderData+1)
			return b
		}()},
		{name: "header past the end", wantErr: signing.ErrMalformed, pkg: func() []byte {
			b := mkRPM(nil, gzMain(), okPayload)
			binary.BigEndian.PutUint32(b[leadSize+12:], 1<<20)
			return b
		}()},
		{name: "entry past the store", wantErr: signing.ErrMalformed,
			pkg: mkRPM(nil, gzMain(tagv{tagPayloadDigestAlgo, typeInt32, 1 << 30, []byte{0, 0, 0, 8}}), okPayload)},
		{name: "string without NUL", wantErr: signing.ErrMalformed,
			pkg: mkRPM(nil, []tagv{tStr(tagPayloadFormat, "cpio"), {tagPayloadCompressor, typeString, 1, []byte("gzip")}}, okPayload)},
		{name: "unknown type", wantErr: signing.ErrMalformed, pkg: mkRPM(nil, gzMain(tagv{1000, 42, 1, []byte{1}}), okPayload)},
		{name: "tag stored twice", wantErr: signing.ErrMalformed, pkg: mkRPM(nil, gzMain(tStr(tagPayloadCompressor, "xz")), okPayload)},
		{name: "header digest mismatch", wantErr: signing.ErrMalformed,
			pkg: mkRPM([]tagv{tStr(sigTagSHA256, plainDigest(nil))}, gzMain(), okPayload)},
		{name: "size tag mismatch", wantErr: signing.ErrMalformed,
			pkg: mkRPM([]tagv{tI32(sigTagSize, 12)}, gzMain(), okPayload)},
		{name: "md5 mismatch", wantErr: signing.ErrMalformed, problem: map[string]error{"usr/bin/x": nil},
			pkg: mkRPM([]tagv{{sigTagMD5, typeBin, 16, make([]byte, 16)}}, gzMain(), okPayload)},
		{name: "md5 match", problem: map[string]error{"usr/bin/x": nil}, pkg: func() []byte {
			sum := md5.Sum(append(encodeHeader(gzMain()), okPayload...))
			return mkRPM([]tagv{{sigTagMD5, typeBin, 16, sum[:]}}, gzMain(), okPayload)
		}()},
		{name: "payload format ustar", wantErr: signing.ErrMalformed,
			pkg: mkRPM(nil, []tagv{tStr(tagPayloadFormat, "ustar")}, okPayload)},
		{name: "unsupported compressor", wantErr: signing.ErrMalformed,
			pkg: mkRPM(nil, []tagv{tStr(tagPayloadCompressor, "lz4")}, okPayload)},
		{name: "unknown digest algorithm", wantErr: signing.ErrMalformed,
			pkg: mkRPM(nil, gzMain(tStrs(tagPayloadDigest, "00"), tI32(tagPayloadDigestAlgo, 99)), okPayload)},
		{name: "payload digest mismatch", wantErr: signing.ErrMalformed, problem: map[string]error{"usr/bin/x": nil},
			pkg: mkRPM(nil, gzMain(tStrs(tagPayloadDigest, plainDigest([]byte("other")))), okPayload)},
		{name: "payload digest match", problem: map[string]error{"usr/bin/x": nil},
			pkg: mkRPM(nil, gzMain(tStrs(tagPayloadDigest, plainDigest(okPayload)), tI32(tagPayloadDigestAlgo, 8)), okPayload)},
		{name: "uncompressed digest mismatch", wantErr: signing.ErrMalformed, problem: map[string]error{"usr/bin/x": nil},
			pkg: mkRPM(nil, gzMain(tStrs(tagPayloadDigestAlt, plainDigest(okPayload))), okPayload)},
		{name: "payload size mismatch", wantErr: signing.ErrMalformed, problem: map[string]error{"usr/bin/x": nil},
			pkg: func() []byte {
				m := gzMain()
				d := sha256.Sum256(encodeHeader(m))
				return mkRPM([]tagv{tStr(sigTagSHA256, hex.EncodeToString(d[:])), tI32(sigTagPayloadSize, 3)}, m, okPayload)
			}()},
		{name: "not gzip after all", wantErr: signing.ErrMalformed,
			pkg: mkRPM(nil, gzMain(), append([]byte{0x1f, 0x8b}, bytes.Repeat([]byte{7}, 50)...))},
		{name: "gzip crc", wantErr: signing.ErrMalformed, pkg: func() []byte {
			p := bytes.Clone(okPayload)
			p[len(p)-6] ^= 1
			return mkRPM(nil, gzMain(), p)
		}()},
		{name: "no trailer", wantErr: signing.ErrMalformed, problem: map[string]error{"usr/bin/x": nil},
			pkg: mkRPM(nil, gzMain(), gz(cpioArchive([]ent{file}, false)))},
		{name: "truncated member", wantErr: signing.ErrMalformed,
			pkg: mkRPM(nil, gzMain(), gz(cpioArchive([]ent{file}, false)[:120]))},
		{name: "crc checksum", wantErr: signing.ErrMalformed,
			pkg: mkRPM(nil, gzMain(), gz(cpioArchive([]ent{{name: "x", mode: reg, data: []byte("abc"), crc: true, badCheck: true}}, true)))},
		{name: "crc checksum good", problem: map[string]error{"x": nil},
			pkg: mkRPM(nil, gzMain(), gz(cpioArchive([]ent{{name: "x", mode: reg, data: []byte("abc"), crc: true}}, true)))},
		{name: "stripped cpio", wantErr: signing.ErrMalformed,
			pkg: mkRPM(nil, gzMain(), gz(cpioArchive([]ent{{name: "x", mode: reg, magic: "07070X"}}, true)))},
		{name: "bad magic", wantErr: signing.ErrMalformed,
			pkg: mkRPM(nil, gzMain(), gz(cpioArchive([]ent{{name: "x", mode: reg, magic: "070707"}}, true)))},
		{name: "name size over the cap", wantErr: signing.ErrMalformed,
			pkg: mkRPM(nil, gzMain(), gz(cpioArchive([]ent{{name: "x", mode: reg, nameSizeAdd: limits.MaxRPMCpioName}}, true)))},
		{name: "unsafe names and links", pkg: mkRPM(nil, gzMain(), gz(cpioArchive([]ent{
			{name: "../../etc/passwd", mode: reg, data: []byte("a")},
			{name: "/etc/shadow", mode: reg, data: []byte("b")},
			{name: "./a/x", mode: reg, data: []byte("c")},
			{name: "a/./x", mode: reg, data: []byte("d")},
			{name: "a/l", mode: 0o120777, data: []byte("/bin/sh")},
			{name: "a/dev", mode: 0o020644},
			{name: "a/dir", mode: 0o040755},
		}, true))), problem: map[string]error{
			"../../etc/passwd": container.ErrMember, "/etc/shadow": container.ErrMember, "a/x": nil,
			"a/x#2": container.ErrMember, "a/l": container.ErrMember, "a/dev": container.ErrMember,
		}},
		{name: "hard links", pkg: mkRPM(nil, gzMain(), gz(cpioArchive([]ent{
			{name: "a", mode: reg, nlink: 3, ino: 9},
			{name: "other", mode: reg, data: []byte("o")},
			{name: "b", mode: reg, nlink: 3, ino: 9},
			{name: "c", mode: reg, nlink: 3, ino: 9, data: []byte("linked")},
		}, true))), problem: map[string]error{"a": nil, "b": nil, "c": nil, "other": nil}},
		{name: "hard link without data", pkg: mkRPM(nil, gzMain(), gz(cpioArchive([]ent{
			{name: "a", mode: reg, nlink: 3, ino: 9},
			{name: "b", mode: reg, nlink: 3, ino: 9},
		}, true))), problem: map[string]error{"a": signing.ErrMalformed, "b": signing.ErrMalformed}},
		{name: "hard link after data", pkg: mkRPM(nil, gzMain(), gz(cpioArchive([]ent{
			{name: "a", mode: reg, nlink: 2, ino: 9, data: []byte("x")},
			{name: "b", mode: reg, nlink: 2, ino: 9},
		}, true))), problem: map[string]error{"a": nil, "b": container.ErrMember}},
		{name: "hard links over the memory cap", lim: func(l *container.Limits) { l.MemberInMemory = 2 },
			pkg: mkRPM(nil, gzMain(), gz(cpioArchive([]ent{
				{name: "a", mode: reg, nlink: 2, ino: 9},
				{name: "b", mode: reg, nlink: 2, ino: 9, data: []byte("xyz")},
			}, true))), problem: map[string]error{"a": container.ErrLimit, "b": nil}},
		{name: "member count cap", lim: func(l *container.Limits) { l.MaxMembers = 2 }, wantErr: container.ErrLimit,
			problem: map[string]error{"a": nil, "b": nil},
			pkg: mkRPM(nil, gzMain(), gz(cpioArchive([]ent{
				{name: "a", mode: reg}, {name: "b", mode: reg}, {name: "c", mode: reg}}, true)))},
		{name: "expanded size cap", lim: func(l *container.Limits) { l.MaxExpandedSize = 1 << 20 }, wantErr: container.ErrLimit,
			pkg: mkRPM(nil, gzMain(), zeros)},
		{name: "ratio cap", lim: func(l *container.Limits) { l.MaxRatio, l.RatioGrace = 100, 1<<16 }, wantErr: container.ErrLimit,
			pkg: mkRPM(nil, gzMain(), zeros)},
		{name: "ratio under the default cap", problem: map[string]error{"z": nil}, pkg: mkRPM(nil, gzMain(), zeros)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := defaultLimits()
			if tt.lim != nil {
				tt.lim(lim)
			}
			members, err := walk(t, tt.pkg, lim)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Walk: %v, want %v", err, tt.wantErr)
			}
			if tt.problem == nil {
				return
			}
			seen := map[string]bool{}
			for _, g := range members {
				key := g.m.Name
				if seen[key] {
					key += "#2"
				}
				seen[key] = true
				want, ok := tt.problem[key]
				switch {
				case !ok:
					t.Errorf("unexpected member %q (%v)", key, g.m.Problem)
				case want == nil && g.m.Problem != nil:
					t.Errorf("%s: Problem %v", key, g.m.Problem)
				case want != nil && !errors.Is(g.m.Problem, want):
					t.Errorf("%s: Problem %v, want %v", key, g.m.Problem, want)
				}
			}
			for k := range tt.problem {
				if !seen[k] {
					t.Errorf("member %s not yielded", k)
				}
			}
			if tt.name == "setuid" && members[0].m.Mode != fs.ModeSetuid|0o755 {
				t.Errorf("Mode %v, want -rwsr-xr-x", members[0].m.Mode)
			}
			if tt.name == "ok" && members[0].m.Mode != 0o755 {
				t.Errorf("Mode %v, want -rwxr-xr-x", members[0].m.Mode)
			}
			if tt.name == "hard links" {
				for _, g := range members {
					if g.m.Name != "other" && string(g.data) != "linked" {
						t.Errorf("link %s: %q", g.m.Name, g.data)
					}
				}
			}
		})
	}
}

func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := mkRPM(nil, gzMain(), gz(cpioArchive([]ent{{name: "a", mode: reg}}, true)))
	err := Reader{}.Walk(ctx, bytes.NewReader(b), int64(len(b)), "x.rpm", defaultLimits(),
		func(*container.Member, io.Reader) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Walk: %v", err)
	}
}

func TestYieldError(t *testing.T) {
	stop := errors.New("stop")
	b := mkRPM(nil, gzMain(), gz(cpioArchive([]ent{{name: "a", mode: reg}, {name: "b", mode: reg}}, true)))
	n := 0
	err := Reader{}.Walk(context.Background(), bytes.NewReader(b), int64(len(b)), "x.rpm", defaultLimits(),
		func(*container.Member, io.Reader) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Walk: %v after %d members", err, n)
	}
}

// TestXZDictionary: an xz payload with a block whose dictionary is over
// the cap is refused before ulikunitz/xz allocates it, in the first
// stream or in a later one (xz reads concatenated streams); multi-block
// streams under the cap read.
func TestXZDictionary(t *testing.T) {
	xzTool := testenv.Tool(t, "xz")
	payload := cpioArchive([]ent{{name: "x", mode: reg, data: bytes.Repeat([]byte("abcdefgh"), 40000)}}, true)
	xz := func(in []byte, args ...string) []byte {
		cmd := exec.Command(xzTool, append([]string{"--format=xz", "-c"}, args...)...)
		cmd.Stdin = bytes.NewReader(in)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	half := len(payload) / 2
	for _, c := range []struct {
		name string
		comp []byte
		want error
	}{
		{"64MiB", xz(payload, "--lzma2=dict=64MiB"), nil},
		{"multi-block", xz(payload, "--block-size=4096", "--check=sha256"), nil},
		{"128MiB", xz(payload, "--lzma2=dict=128MiB"), container.ErrLimit},
		{"1536MiB in a second stream", append(xz(payload[:half]), xz(payload[half:], "--lzma2=dict=1536MiB")...), container.ErrLimit},
		{"two streams with padding", append(append(xz(payload[:half]), 0, 0, 0, 0), xz(payload[half:])...), nil},
		{"LZMA2 control byte", func() []byte {
			b := xz(payload)
			b[12+int(b[12]+1)*4] = 0x05
			return b
		}(), signing.ErrMalformed},
	} {
		pkg := mkRPM(nil, []tagv{tStr(tagPayloadCompressor, "xz")}, c.comp)
		members, err := walk(t, pkg, nil)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: Walk %v, want %v", c.name, err, c.want)
		}
		if c.want == nil && (len(members) != 1 || !bytes.Equal(members[0].data, bytes.Repeat([]byte("abcdefgh"), 40000))) {
			t.Errorf("%s: members %d", c.name, len(members))
		}
	}
}
