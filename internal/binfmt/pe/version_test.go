package pe

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/codesignval/csv/internal/binfmt"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testenv"
)

// Fixtures: a VS_VERSIONINFO built from blocks, placed in a resource tree in
// the .data section of a testbin PE, with data directory 2 patched to point
// at it.

func verString(name, value string) []byte {
	v := testbin.UTF16Z(value)
	return testbin.VersionBlock(name, true, v, len(v)/2)
}

func fixedInfo(fv, pv [4]uint16) []byte {
	b := make([]byte, 52)
	le := binary.LittleEndian
	le.PutUint32(b[0:], fixedSignature)
	le.PutUint32(b[4:], 0x00010000)
	le.PutUint32(b[8:], uint32(fv[0])<<16|uint32(fv[1]))
	le.PutUint32(b[12:], uint32(fv[2])<<16|uint32(fv[3]))
	le.PutUint32(b[16:], uint32(pv[0])<<16|uint32(pv[1]))
	le.PutUint32(b[20:], uint32(pv[2])<<16|uint32(pv[3]))
	le.PutUint32(b[24:], 0x3f)
	le.PutUint32(b[32:], 0x00040004) // VOS_NT_WINDOWS32
	le.PutUint32(b[36:], 1)          // VFT_APP
	return b
}

type table struct {
	lang    string // "040904b0"
	strings [][2]string
}

func versionInfo(fixed []byte, tables ...table) []byte {
	var sfi [][]byte
	for _, t := range tables {
		var ss [][]byte
		for _, s := range t.strings {
			ss = append(ss, verString(s[0], s[1]))
		}
		sfi = append(sfi, testbin.VersionBlock(t.lang, true, nil, 0, ss...))
	}
	children := [][]byte{testbin.VersionBlock("StringFileInfo", true, nil, 0, sfi...),
		testbin.VersionBlock("VarFileInfo", true, nil, 0, testbin.VersionBlock("Translation", false, []byte{0x09, 0x04, 0xb0, 0x04}, 4))}
	return testbin.VersionBlock("VS_VERSION_INFO", false, fixed, len(fixed), children...)
}

const dataRVA = 0x2000 // where testbin puts .data with the default code

type langData struct {
	lang uint16
	data []byte
}

// rsrc builds a resource table at RVA dataRVA: one type (typeID), one name
// (ID 1), the given languages.
func rsrc(typeID uint32, langs ...langData) []byte { return rsrcNames(typeID, langs) }

// rsrcNames builds a resource table at RVA dataRVA: one type (typeID), one
// name (IDs 1, 2, ...) per element of names, each with its languages. With
// one name the layout is: root directory at 0, type directory at 24, name
// directory at 48, data entries from 64+8*len(langs).
func rsrcNames(typeID uint32, names ...[]langData) []byte {
	le := binary.LittleEndian
	dir := func(entries ...[2]uint32) []byte {
		b := make([]byte, 16+8*len(entries))
		le.PutUint16(b[14:], uint16(len(entries)))
		for i, e := range entries {
			le.PutUint32(b[16+8*i:], e[0])
			le.PutUint32(b[20+8*i:], e[1])
		}
		return b
	}
	b := dir([2]uint32{typeID, 0x80000000 | 24}) // root at 0
	nameAt := 24 + 16 + 8*len(names)
	var nes [][2]uint32
	at := nameAt
	for i, langs := range names {
		nes = append(nes, [2]uint32{uint32(i + 1), 0x80000000 | uint32(at)})
		at += 16 + 8*len(langs)
	}
	b = append(b, dir(nes...)...) // type at 24
	dataEntries := at
	n := 0
	for _, langs := range names {
		var les [][2]uint32
		for _, l := range langs {
			les = append(les, [2]uint32{uint32(l.lang), uint32(dataEntries + 16*n)})
			n++
		}
		b = append(b, dir(les...)...)
	}
	blobs := []byte{}
	blobAt := dataEntries + 16*n
	for _, langs := range names {
		for _, l := range langs {
			de := make([]byte, 16)
			le.PutUint32(de[0:], uint32(dataRVA+blobAt+len(blobs)))
			le.PutUint32(de[4:], uint32(len(l.data)))
			b = append(b, de...)
			blobs = testbin.Pad4(append(blobs, l.data...))
		}
	}
	return append(b, blobs...)
}

// withResources returns a PE whose data directory 2 points at res in .data.
func withResources(t testing.TB, pe32 bool, res []byte) []byte {
	t.Helper()
	img := testbin.PE(testbin.PEOptions{PE32: pe32, Data: res})
	f, err := Parse(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Sections) != 2 || f.Sections[1].VirtualAddress != dataRVA {
		t.Fatalf("unexpected layout: %+v", f.Sections)
	}
	off := f.CertDirOffset - 2*dirEntrySize
	binary.LittleEndian.PutUint32(img[off:], dataRVA)
	binary.LittleEndian.PutUint32(img[off+4:], uint32(len(res)))
	return img
}

func readVI(b []byte) (*VersionInfo, error) {
	f, err := Parse(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, err
	}
	return ReadVersionInfo(bytes.NewReader(b), f)
}

var (
	toolStrings = [][2]string{
		{"CompanyName", "Contoso"}, {"FileDescription", "Contoso build tool"}, {"FileVersion", "1.2.3.4"},
		{"InternalName", "tool"}, {"OriginalFilename", "tool.exe"}, {"ProductName", "Contoso Tools"}, {"ProductVersion", "1.2"},
	}
	toolMap = map[string]string{
		"CompanyName": "Contoso", "FileDescription": "Contoso build tool", "FileVersion": "1.2.3.4",
		"InternalName": "tool", "OriginalFilename": "tool.exe", "ProductName": "Contoso Tools", "ProductVersion": "1.2",
	}
	toolFixed = fixedInfo([4]uint16{1, 2, 3, 4}, [4]uint16{1, 2, 0, 0})
)

// fixtures are the well-formed test images, shared by the tests, the peer
// comparison and the fuzz seeds.
func fixtures(t testing.TB) map[string][]byte {
	vi := versionInfo(toolFixed, table{"040904b0", toolStrings})
	// wValueLength in bytes rather than code units, as some compilers write.
	byteLen := testbin.VersionBlock("VS_VERSION_INFO", false, toolFixed, 52, testbin.VersionBlock("StringFileInfo", true, nil, 0,
		testbin.VersionBlock("040904b0", true, nil, 0, func() []byte {
			v := testbin.UTF16Z("bytes.exe")
			return testbin.VersionBlock("OriginalFilename", true, v, len(v))
		}())))
	return map[string][]byte{
		"pe32plus":        withResources(t, false, rsrc(rtVersion, langData{0x409, vi})),
		"pe32":            withResources(t, true, rsrc(rtVersion, langData{0x409, vi})),
		"german first":    withResources(t, false, rsrc(rtVersion, langData{0x407, versionInfo(fixedInfo([4]uint16{9, 9, 9, 9}, [4]uint16{}), table{"040704b0", [][2]string{{"OriginalFilename", "werkzeug.exe"}}})}, langData{0x409, vi})),
		"tables":          withResources(t, false, rsrc(rtVersion, langData{0, versionInfo(toolFixed, table{"040704b0", [][2]string{{"OriginalFilename", "werkzeug.exe"}}}, table{"040904b0", toolStrings})})),
		"no fixed info":   withResources(t, false, rsrc(rtVersion, langData{0x409, versionInfo(nil, table{"040904b0", [][2]string{{"OriginalFilename", "nofixed.exe"}}})})),
		"byte lengths":    withResources(t, false, rsrc(rtVersion, langData{0x409, byteLen})),
		"unicode":         withResources(t, false, rsrc(rtVersion, langData{0x409, versionInfo(toolFixed, table{"040904b0", [][2]string{{"OriginalFilename", "wörk-工具.exe"}, {"Comments", "\U0001F600"}}})})),
		"manifest only":   withResources(t, false, rsrc(24, langData{0x409, []byte("<assembly/>")})),
		"no resources":    testbin.PE(testbin.PEOptions{}),
		"strings missing": withResources(t, false, rsrc(rtVersion, langData{0x409, testbin.VersionBlock("VS_VERSION_INFO", false, toolFixed, 52)})),
		// Shapes where readers may disagree (see Readings): a second
		// language, a second string table, a second name, a key written
		// twice or in other letter case.
		"languages disagree": withResources(t, false, rsrc(rtVersion, langData{0x409, vi}, langData{0x407, cdbInfo})),
		"tables disagree": withResources(t, false, rsrc(rtVersion, langData{0x409, versionInfo(toolFixed,
			table{"040904b0", toolStrings}, table{"040704b0", [][2]string{{"OriginalFilename", "cdb.exe"}}})})),
		"two names":    withResources(t, false, rsrcNames(rtVersion, []langData{{0x409, vi}}, []langData{{0x409, cdbInfo}})),
		"repeated key": withResources(t, false, rsrc(rtVersion, langData{0x409, versionInfo(toolFixed, table{"040904b0", [][2]string{{"OriginalFilename", "tool.exe"}, {"OriginalFilename", "cdb.exe"}}})})),
		"key case":     withResources(t, false, rsrc(rtVersion, langData{0x409, versionInfo(toolFixed, table{"040904b0", [][2]string{{"ORIGINALFILENAME", "cdb.exe"}}})})),
		// The StringFileInfo block in other letter case, beside a proper
		// one: VerQueryValue finds blocks case-insensitively.
		"block case": withResources(t, false, rsrc(rtVersion, langData{0x409, testbin.VersionBlock("VS_VERSION_INFO", false, toolFixed, 52,
			testbin.VersionBlock("StringFileInfo", true, nil, 0, testbin.VersionBlock("040904b0", true, nil, 0, verString("OriginalFilename", "tool.exe"))),
			testbin.VersionBlock("stringFILEinfo", true, nil, 0, testbin.VersionBlock("040904b0", true, nil, 0, verString("OriginalFilename", "cdb.exe"))))})),
		// The RT_VERSION type entry with bits above its 16-bit ID set, or
		// the name flag set on an entry among the ID entries: Windows
		// compares the WORD Id of the entries after the named ones.
		"type id high bits": withResources(t, false, patchRoot(rsrc(rtVersion, langData{0x409, cdbInfo}), 0x00040000|rtVersion)),
		"type id name flag": withResources(t, false, patchRoot(rsrc(rtVersion, langData{0x409, cdbInfo}), 0x80000000|rtVersion)),
		// OriginalFilename "cdb.exe.txt" whose wValueLength says 7: a
		// reader that takes the length VerQueryValue returns reads cdb.exe.
		"counted": withResources(t, false, rsrc(rtVersion, langData{0x409, testbin.VersionBlock("VS_VERSION_INFO", false, toolFixed, 52,
			testbin.VersionBlock("StringFileInfo", true, nil, 0, testbin.VersionBlock("040904b0", true, nil, 0, testbin.VersionBlock("OriginalFilename", true, testbin.UTF16Z("cdb.exe.txt"), 7))))})),
		// Keys with a dotless i, which an upper-case table folds to I.
		"dotless i": withResources(t, false, rsrc(rtVersion, langData{0x409, testbin.VersionBlock("VS_VERSION_INFO", false, toolFixed, 52,
			testbin.VersionBlock("StringFıleInfo", true, nil, 0, testbin.VersionBlock("040904b0", true, nil, 0, verString("OrıgınalFılename", "cdb.exe"))))})),
	}
}

// patchRoot sets the Name field of the root directory's first entry.
func patchRoot(res []byte, name uint32) []byte {
	binary.LittleEndian.PutUint32(res[16:], name)
	return res
}

// cdbInfo is a version resource that names another file, with another
// version.
var cdbInfo = versionInfo(fixedInfo([4]uint16{9, 9, 9, 9}, [4]uint16{9, 9, 0, 0}), table{"040704b0", [][2]string{{"OriginalFilename", "cdb.exe"}}})

func TestReadVersionInfo(t *testing.T) {
	fx := fixtures(t)
	tests := []struct {
		name string
		want *VersionInfo
	}{
		{"pe32plus", &VersionInfo{Strings: toolMap, FileVersion: [4]uint16{1, 2, 3, 4}, ProductVersion: [4]uint16{1, 2, 0, 0}, HasFixed: true}},
		{"pe32", &VersionInfo{Strings: toolMap, FileVersion: [4]uint16{1, 2, 3, 4}, ProductVersion: [4]uint16{1, 2, 0, 0}, HasFixed: true}},
		{"german first", &VersionInfo{Strings: toolMap, FileVersion: [4]uint16{1, 2, 3, 4}, ProductVersion: [4]uint16{1, 2, 0, 0}, HasFixed: true}},
		{"tables", &VersionInfo{Strings: toolMap, FileVersion: [4]uint16{1, 2, 3, 4}, ProductVersion: [4]uint16{1, 2, 0, 0}, HasFixed: true}},
		{"no fixed info", &VersionInfo{Strings: map[string]string{"OriginalFilename": "nofixed.exe"}}},
		{"byte lengths", &VersionInfo{Strings: map[string]string{"OriginalFilename": "bytes.exe"}, FileVersion: [4]uint16{1, 2, 3, 4}, ProductVersion: [4]uint16{1, 2, 0, 0}, HasFixed: true}},
		{"unicode", &VersionInfo{Strings: map[string]string{"OriginalFilename": "wörk-工具.exe", "Comments": "\U0001F600"}, FileVersion: [4]uint16{1, 2, 3, 4}, ProductVersion: [4]uint16{1, 2, 0, 0}, HasFixed: true}},
		{"strings missing", &VersionInfo{Strings: map[string]string{}, FileVersion: [4]uint16{1, 2, 3, 4}, ProductVersion: [4]uint16{1, 2, 0, 0}, HasFixed: true}},
		{"manifest only", nil},
		{"no resources", nil},
		{"languages disagree", &VersionInfo{Strings: toolMap, FileVersion: [4]uint16{1, 2, 3, 4}, ProductVersion: [4]uint16{1, 2, 0, 0}, HasFixed: true}},
		{"tables disagree", &VersionInfo{Strings: toolMap, FileVersion: [4]uint16{1, 2, 3, 4}, ProductVersion: [4]uint16{1, 2, 0, 0}, HasFixed: true}},
		{"two names", &VersionInfo{Strings: toolMap, FileVersion: [4]uint16{1, 2, 3, 4}, ProductVersion: [4]uint16{1, 2, 0, 0}, HasFixed: true}},
		{"repeated key", &VersionInfo{Strings: map[string]string{"OriginalFilename": "tool.exe"}, FileVersion: [4]uint16{1, 2, 3, 4}, ProductVersion: [4]uint16{1, 2, 0, 0}, HasFixed: true}},
		{"key case", &VersionInfo{Strings: map[string]string{"ORIGINALFILENAME": "cdb.exe"}, FileVersion: [4]uint16{1, 2, 3, 4}, ProductVersion: [4]uint16{1, 2, 0, 0}, HasFixed: true}},
		{"counted", &VersionInfo{Strings: map[string]string{"OriginalFilename": "cdb.exe.txt"}, FileVersion: [4]uint16{1, 2, 3, 4}, ProductVersion: [4]uint16{1, 2, 0, 0}, HasFixed: true}},
		{"dotless i", &VersionInfo{Strings: map[string]string{"OrıgınalFılename": "cdb.exe"}, FileVersion: [4]uint16{1, 2, 3, 4}, ProductVersion: [4]uint16{1, 2, 0, 0}, HasFixed: true}},
		{"block case", &VersionInfo{Strings: map[string]string{"OriginalFilename": "tool.exe"}, FileVersion: [4]uint16{1, 2, 3, 4}, ProductVersion: [4]uint16{1, 2, 0, 0}, HasFixed: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readVI(fx[tt.name])
			if err != nil {
				t.Fatal(err)
			}
			if got != nil {
				// The preferred reading only: TestReadVersionInfoAll
				// checks every table and resource.
				g := *got
				g.Tables, g.Others = nil, nil
				got = &g
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestReadVersionInfoReadings: every string table, resource and spelling
// of a key is a reading, the preferred one first; a deny rule must consider
// them all, since which one Windows reads is not established.
func TestReadVersionInfoReadings(t *testing.T) {
	fx := fixtures(t)
	type rd struct {
		name  string
		fixed string
	}
	tests := []struct {
		name string
		want []rd
	}{
		{"pe32plus", []rd{{"tool.exe", "1.2.3.4"}}},
		{"no fixed info", []rd{{"nofixed.exe", "none"}}},
		{"strings missing", []rd{{"", "1.2.3.4"}}},
		{"german first", []rd{{"tool.exe", "1.2.3.4"}, {"werkzeug.exe", "9.9.9.9"}}},
		{"tables", []rd{{"tool.exe", "1.2.3.4"}, {"werkzeug.exe", "1.2.3.4"}}},
		{"languages disagree", []rd{{"tool.exe", "1.2.3.4"}, {"cdb.exe", "9.9.9.9"}}},
		{"tables disagree", []rd{{"tool.exe", "1.2.3.4"}, {"cdb.exe", "1.2.3.4"}}},
		{"two names", []rd{{"tool.exe", "1.2.3.4"}, {"cdb.exe", "9.9.9.9"}}},
		{"repeated key", []rd{{"tool.exe", "1.2.3.4"}, {"cdb.exe", "1.2.3.4"}}},
		{"key case", []rd{{"", "1.2.3.4"}, {"cdb.exe", "1.2.3.4"}}},
		{"block case", []rd{{"tool.exe", "1.2.3.4"}, {"cdb.exe", "1.2.3.4"}}},
		{"dotless i", []rd{{"", "1.2.3.4"}, {"cdb.exe", "1.2.3.4"}}},
		{"counted", []rd{{"cdb.exe.txt", "1.2.3.4"}, {"cdb.exe", "1.2.3.4"}}},
		{"type id high bits", []rd{{"cdb.exe", "9.9.9.9"}}},
		{"type id name flag", []rd{{"cdb.exe", "9.9.9.9"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vi, err := readVI(fx[tt.name])
			if err != nil || vi == nil {
				t.Fatalf("%+v, %v", vi, err)
			}
			rs, ok := vi.Readings("OriginalFilename")
			if !ok {
				t.Fatal("too many readings")
			}
			var got []rd
			for _, r := range rs {
				f := "none"
				if r.HasFixed {
					f = fmt.Sprintf("%d.%d.%d.%d", r.FileVersion[0], r.FileVersion[1], r.FileVersion[2], r.FileVersion[3])
				}
				got = append(got, rd{r.Strings["OriginalFilename"], f})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("readings %v, want %v", got, tt.want)
			}
		})
	}
}

// TestReadVersionInfoCaps: more version resources, string tables or
// readings than the caps allow are refused, not truncated.
func TestReadVersionInfoCaps(t *testing.T) {
	small := versionInfo(toolFixed, table{"040904b0", [][2]string{{"OriginalFilename", "a.exe"}}})
	var langs []langData
	for i := range maxVersionResources + 1 {
		langs = append(langs, langData{uint16(0x400 + i), small})
	}
	var tables []table
	for range maxVersionTables + 1 {
		tables = append(tables, table{"040904b0", [][2]string{{"OriginalFilename", "a.exe"}}})
	}
	for name, img := range map[string][]byte{
		"resources": withResources(t, false, rsrc(rtVersion, langs...)),
		"tables":    withResources(t, false, rsrc(rtVersion, langData{0x409, versionInfo(toolFixed, tables...)})),
	} {
		t.Run(name, func(t *testing.T) {
			vi, err := readVI(img)
			var me *binfmt.MalformedError
			if vi != nil || !errors.As(err, &me) || !strings.Contains(err.Error(), "more than") {
				t.Fatalf("got %+v, %v; want a MalformedError over a cap", vi, err)
			}
		})
	}
	var dups [][2]string
	for range maxReadings + 1 {
		dups = append(dups, [2]string{"OriginalFilename", "x.exe"})
	}
	vi, err := readVI(withResources(t, false, rsrc(rtVersion, langData{0x409, versionInfo(toolFixed, table{"040904b0", dups})})))
	if err != nil {
		t.Fatal(err)
	}
	if rs, ok := vi.Readings("OriginalFilename"); ok || len(rs) != maxReadings {
		t.Errorf("%d readings, ok %v; want %d and not ok", len(rs), ok, maxReadings)
	}
}

// sharedDirs is a resource table of n RT_VERSION type entries that all
// lead to one name directory, whose two names lead to one empty language
// directory: 32 KiB that a walk without a cap on directories reads in
// 16,000 reads (in csv validate, as many system calls: 50 ms per file).
func sharedDirs(n int) []byte {
	le := binary.LittleEndian
	root := make([]byte, 16+8*n)
	le.PutUint16(root[14:], uint16(n))
	names := len(root)
	for i := range n {
		le.PutUint32(root[16+8*i:], rtVersion)
		le.PutUint32(root[20+8*i:], 0x80000000|uint32(names))
	}
	nd := make([]byte, 16+16)
	le.PutUint16(nd[14:], 2)
	for i := range 2 {
		le.PutUint32(nd[16+8*i:], uint32(i+1))
		le.PutUint32(nd[20+8*i:], 0x80000000|uint32(names+len(nd)))
	}
	return append(append(root, nd...), make([]byte, 16)...)
}

// countingReader counts ReadAt calls.
type countingReader struct {
	r *bytes.Reader
	n int
}

func (c *countingReader) ReadAt(b []byte, off int64) (int, error) {
	c.n++
	return c.r.ReadAt(b, off)
}

// TestReadVersionInfoSharedDirectories: directories that share
// subdirectories cannot multiply the reads: the walk reads at most
// maxResourceDirs directories and refuses the file past them.
func TestReadVersionInfoSharedDirectories(t *testing.T) {
	img := withResources(t, false, sharedDirs(4000))
	f, err := Parse(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	cr := &countingReader{r: bytes.NewReader(img)}
	vi, err := ReadVersionInfo(cr, f)
	var me *binfmt.MalformedError
	if vi != nil || !errors.As(err, &me) || !strings.Contains(err.Error(), "resource directories") {
		t.Errorf("got %+v, %v; want a MalformedError over the directory cap", vi, err)
	}
	if cr.n > 3*maxResourceDirs {
		t.Errorf("%d reads for a %d-byte file", cr.n, len(img))
	}
	// A few shared directories are read, and lead to nothing.
	if vi, err := readVI(withResources(t, false, sharedDirs(3))); vi != nil || err != nil {
		t.Errorf("three types sharing their names: %+v, %v", vi, err)
	}
}

// TestReadVersionInfoNamedType: a named resource type (an entry among the
// named ones, the name flag set) is not RT_VERSION whatever the low bits of
// its name offset, as Windows searches IDs after the named entries only.
func TestReadVersionInfoNamedType(t *testing.T) {
	res := patchRoot(rsrc(rtVersion, langData{0x409, cdbInfo}), 0x80000000|rtVersion)
	binary.LittleEndian.PutUint16(res[12:], 1) // one named entry, no ID entry
	binary.LittleEndian.PutUint16(res[14:], 0)
	if vi, err := readVI(withResources(t, false, res)); vi != nil || err != nil {
		t.Errorf("a named type: %+v, %v; want no version resource", vi, err)
	}
}

func TestReadVersionInfoMalformed(t *testing.T) {
	good := rsrc(rtVersion, langData{0x409, versionInfo(toolFixed, table{"040904b0", toolStrings})})
	le := binary.LittleEndian
	// Offsets in good: root dir 0, type dir 24, name dir 48, data entry 72,
	// version data 88.
	const viAt = 88
	patch := func(res []byte, at int, v uint32) []byte {
		b := bytes.Clone(res)
		le.PutUint32(b[at:], v)
		return b
	}
	patch16 := func(res []byte, at int, v uint16) []byte {
		b := bytes.Clone(res)
		le.PutUint16(b[at:], v)
		return b
	}
	tests := []struct {
		name string
		img  []byte
		want string
	}{
		{"table RVA in no section", func() []byte {
			img := withResources(t, false, good)
			f, _ := Parse(bytes.NewReader(img), int64(len(img)))
			le.PutUint32(img[f.CertDirOffset-16:], 0x900000)
			return img
		}(), "lies in no section"},
		{"too many entries", withResources(t, false, patch16(good, 14, 5000)), "over the limit"},
		{"entries past the section", withResources(t, false, patch16(good, 24+14, 400)), "outside the resource section"},
		{"subdirectory outside the section", withResources(t, false, patch(good, 20, 0x80000000|0x7000)), "points to offset 0x7000, outside the resource section"},
		{"data where a directory belongs", withResources(t, false, patch(good, 20, 24)), "points to data where a subdirectory belongs"},
		{"directory where data belongs", withResources(t, false, patch(good, 48+20, 0x80000000|48)), "nested deeper than 3 levels"},
		{"data entry too small", withResources(t, false, patch(good, 72+4, 4)), "too small"},
		{"data RVA past the raw data", withResources(t, false, patch(good, 72, dataRVA+0x1f0)), "extends past the raw data"},
		{"not VS_VERSION_INFO", withResources(t, false, patch16(good, viAt+6, 'X')), "not VS_VERSION_INFO"},
		{"bad fixed signature", withResources(t, false, patch(good, viAt+40, 0x12345678)), "signature 0x12345678"},
		{"fixed info too short", withResources(t, false, patch16(good, viAt+2, 20)), "VS_FIXEDFILEINFO is 20 bytes"},
		{"block longer than the resource", withResources(t, false, patch16(good, viAt, 0xfff0)), "does not fit"},
		{"child longer than its parent", withResources(t, false, patch16(good, viAt+92, 0x7000)), "does not fit"},
		// Layouts where readers disagree on which strings the resource
		// holds (VerQueryValue as Wine and ReactOS write it, pefile): the
		// file is refused rather than read one way.
		{"root value longer than VS_FIXEDFILEINFO", withResources(t, false, patch16(good, viAt+2, 60)), "not the 52 bytes of a VS_FIXEDFILEINFO"},
		{"root value counted as text", withResources(t, false, patch16(good, viAt+4, 1)), "52 characters"},
		{"StringFileInfo with a value", withResources(t, false, patch16(good, viAt+92+2, 5)), `"StringFileInfo" has a value`},
		{"StringTable with a value", withResources(t, false, patch16(good, viAt+128+2, 5)), `"040904b0" has a value`},
		{"a block of length 0 before others", withResources(t, false, patch16(good, viAt+328, 0)), "length 0 followed by data"},
		{"data after VS_VERSION_INFO", withResources(t, false, patch16(good, viAt, 92)), "data after VS_VERSION_INFO"},
		{"unterminated key", withResources(t, false, func() []byte {
			b := bytes.Clone(good)
			le.PutUint16(b[viAt:], 12) // key "VS" and no NUL within 12 bytes
			return b
		}()), "not terminated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vi, err := readVI(tt.img)
			var me *binfmt.MalformedError
			if vi != nil || !errors.As(err, &me) {
				t.Fatalf("got %+v, %v; want a MalformedError", vi, err)
			}
			if me.Offset <= 0 || me.Offset >= int64(len(tt.img)) {
				t.Errorf("offset %#x outside the file", me.Offset)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// TestReadVersionInfoRealFiles: the shared third-party PE files carry no
// version resource (the pegoat files have a resource table with other
// resources), so each yields nil without error.
func TestReadVersionInfoRealFiles(t *testing.T) {
	dir := testenv.Shared(t, "testdata/pe")
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
	n := 0
	for _, name := range files {
		if strings.HasSuffix(name, ".pem") || strings.HasSuffix(name, ".md") {
			continue
		}
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := Parse(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		vi, err := ReadVersionInfo(bytes.NewReader(data), f)
		if vi != nil || err != nil {
			t.Errorf("%s: %+v, %v; want no version resource", filepath.Base(name), vi, err)
		}
		n++
	}
	if n < 6 {
		t.Errorf("only %d PE files checked", n)
	}
}

// peerScript prints, as JSON, what pefile reads from each file's version
// resource: the en-US (else first) string table and the fixed file version.
const peerScript = `
import json, sys, pefile
out = {}
for name in sys.argv[1:]:
    p = pefile.PE(name, fast_load=True)
    p.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY['IMAGE_DIRECTORY_ENTRY_RESOURCE']])
    if not hasattr(p, 'VS_VERSIONINFO'):
        out[name] = None
        continue
    tables = [st for fi in getattr(p, 'FileInfo', []) for e in fi if getattr(e, 'Key', b'') == b'StringFileInfo' for st in e.StringTable]
    strings = {}
    if tables:
        t = next((st for st in tables if st.LangID.lower().startswith(b'0409')), tables[0])
        strings = {k.decode(): v.decode() for k, v in t.entries.items()}
    fv = None
    if hasattr(p, 'VS_FIXEDFILEINFO'):
        f = p.VS_FIXEDFILEINFO[0]
        fv = [f.FileVersionMS >> 16, f.FileVersionMS & 0xffff, f.FileVersionLS >> 16, f.FileVersionLS & 0xffff]
    every = [[st.LangID.decode(), {k.decode(): v.decode() for k, v in st.entries.items()}]
             for fi in getattr(p, 'FileInfo', []) for e in fi if getattr(e, 'Key', b'') == b'StringFileInfo' for st in e.StringTable]
    out[name] = {"strings": strings, "fixed": fv, "all": every}
print(json.dumps(out))
`

// TestReadVersionInfoPeer compares the fixtures with pefile (Debian's
// python3-pefile), an independent parser. It skips where pefile is absent.
func TestReadVersionInfoPeer(t *testing.T) {
	python := ""
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import pefile").Run() == nil {
			python = p
			break
		}
	}
	if python == "" {
		t.Skip("python3 with pefile is not installed (apt-get install python3-pefile)")
	}
	dir := t.TempDir()
	fx := fixtures(t)
	var names []string
	skip := map[string]bool{}
	for name, img := range fx {
		switch name {
		case "german first", "languages disagree":
			// pefile keeps every language's resource; which one it reports
			// is its own choice.
			skip[name] = true
		case "no fixed info":
			// pefile reads no StringFileInfo without a VS_FIXEDFILEINFO;
			// Microsoft documents wValueLength 0 as "no Value member".
			continue
		case "counted":
			// pefile reads the value as long as wValueLength says (a
			// reading we have too: hasEntry), and reports that one.
			skip[name] = true
		case "block case", "dotless i":
			// pefile reads a StringFileInfo block only by its exact key;
			// VerQueryValue ignores case.
			skip[name] = true
		case "repeated key":
			// pefile keeps the last of a repeated key, we the first (both
			// are readings: another reader, another choice).
			skip[name] = true
		}
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".exe")
		if err := os.WriteFile(p, img, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, p)
	}
	out, err := exec.Command(python, append([]string{"-c", peerScript}, names...)...).Output()
	if err != nil {
		t.Fatalf("pefile: %v", err)
	}
	var peer map[string]*struct {
		Strings map[string]string
		Fixed   *[4]uint16
		All     [][2]json.RawMessage
	}
	if err := json.Unmarshal(out, &peer); err != nil {
		t.Fatal(err)
	}
	for _, p := range names {
		data, _ := os.ReadFile(p)
		vi, err := readVI(data)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		want := peer[p]
		// Every string pefile reads, in any table of any resource, is one
		// we read too: a deny rule sees at least what another reader sees.
		if want != nil {
			for _, tbl := range want.All {
				var key string
				var entries map[string]string
				if json.Unmarshal(tbl[0], &key) != nil || json.Unmarshal(tbl[1], &entries) != nil {
					t.Fatalf("pefile output %s", tbl)
				}
				for k, v := range bmpOnly(entries) {
					if !hasEntry(vi, key, k, v) {
						t.Errorf("%s: pefile reads %s = %q in table %s; we do not", filepath.Base(p), k, v, key)
					}
				}
			}
		}
		if skip[strings.ReplaceAll(strings.TrimSuffix(filepath.Base(p), ".exe"), "_", " ")] {
			continue
		}
		switch {
		case vi == nil || want == nil:
			if (vi == nil) != (want == nil) {
				t.Errorf("%s: ours %+v, pefile %+v", filepath.Base(p), vi, want)
			}
			continue
		case !reflect.DeepEqual(bmpOnly(vi.Strings), bmpOnly(want.Strings)):
			t.Errorf("%s: strings %v, pefile %v", filepath.Base(p), vi.Strings, want.Strings)
		case vi.HasFixed != (want.Fixed != nil) || (want.Fixed != nil && vi.FileVersion != *want.Fixed):
			t.Errorf("%s: fixed %v %v, pefile %v", filepath.Base(p), vi.HasFixed, vi.FileVersion, want.Fixed)
		}
	}
}

// hasEntry reports whether some string table with that key, of any of vi's
// resources, holds the entry.
func hasEntry(vi *VersionInfo, table, k, v string) bool {
	if vi == nil {
		return false
	}
	for _, r := range append([]*VersionInfo{vi}, vi.Others...) {
		for _, t := range r.Tables {
			if t.Key == table && slices.ContainsFunc(t.Entries, func(e StringEntry) bool { return e.Key == k && (e.Value == v || e.Counted == v) }) {
				return true
			}
		}
	}
	return false
}

// bmpOnly drops entries with characters outside the Basic Multilingual
// Plane, which pefile writes as escaped surrogates ("\\ud83d\\ude00").
func bmpOnly(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if !strings.ContainsFunc(v, func(r rune) bool { return r > 0xffff }) && !strings.Contains(v, `\u`) {
			out[k] = v
		}
	}
	return out
}

func FuzzReadVersionInfo(f *testing.F) {
	for _, img := range fixtures(f) {
		f.Add(img)
	}
	f.Add(withResources(f, false, sharedDirs(100)))
	// Layouts readers disagree on (TestReadVersionInfoMalformed).
	good := rsrc(rtVersion, langData{0x409, versionInfo(toolFixed, table{"040904b0", toolStrings})})
	for _, p := range [][2]int{{88 + 2, 60}, {88 + 4, 1}, {88 + 92 + 2, 5}, {88 + 128 + 2, 5}, {88 + 328, 0}, {88, 92}} {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint16(b[p[0]:], uint16(p[1]))
		f.Add(withResources(f, false, b))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pf, err := Parse(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		vi, err := ReadVersionInfo(bytes.NewReader(b), pf)
		if err != nil {
			var me *binfmt.MalformedError
			if vi != nil || !errors.As(err, &me) {
				t.Fatalf("ReadVersionInfo = %+v, %v", vi, err)
			}
			return
		}
		if vi == nil {
			return
		}
		if vi.Strings == nil {
			t.Fatal("nil Strings")
		}
		for k, v := range vi.Strings {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				t.Fatalf("invalid UTF-8: %q = %q", k, v)
			}
		}
		rs, ok := vi.Readings("OriginalFilename", "FileDescription")
		if len(rs) == 0 || len(rs) > maxReadings || (ok && len(rs) == maxReadings+1) {
			t.Fatalf("%d readings (ok %v)", len(rs), ok)
		}
		for _, r := range rs {
			for _, v := range r.Strings {
				if !utf8.ValidString(v) {
					t.Fatalf("invalid UTF-8 in a reading: %q", v)
				}
			}
		}
	})
}

// TestReadVersionInfoMutantsAgainstPefile mutates the fixtures' version
// resources at random (a fixed seed) and checks that every name pefile
// reads from a mutant is one of our readings, or that we refuse the file:
// a layout two readers read differently must not hide a name from a deny
// rule. It found the type IDs Windows compares by their low 16 bits, and
// the layouts TestReadVersionInfoMalformed refuses. One difference is left
// on purpose: pefile reads a string whose wValueLength is 0 as empty,
// which no name rule compares. It skips where pefile is absent.
func TestReadVersionInfoMutantsAgainstPefile(t *testing.T) {
	if exec.Command("/usr/bin/python3", "-c", "import pefile").Run() != nil {
		t.Skip("/usr/bin/python3 with pefile is not installed (apt-get install python3-pefile)")
	}
	fx := fixtures(t)
	bases := slices.Sorted(maps.Keys(fx))
	rng := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	imgs := map[string][]byte{}
	var names []string
	for i := range 1500 {
		b := bytes.Clone(fx[bases[rng.IntN(len(bases))]])
		for range 1 + rng.IntN(8) {
			off := len(b) - 1 - rng.IntN(min(len(b)-1, 1200)) // the resource sits at the end
			switch rng.IntN(3) {
			case 0:
				b[off] = byte(rng.IntN(256))
			case 1:
				b[off] ^= 1 << rng.IntN(8)
			default:
				b[off] = 0
			}
		}
		p := filepath.Join(dir, fmt.Sprintf("m%04d.exe", i))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, p)
		imgs[p] = b
	}
	out, err := exec.Command("/usr/bin/python3", append([]string{"-c", mutantScript}, names...)...).Output()
	if err != nil {
		t.Fatalf("pefile: %v", err)
	}
	var peer map[string][][2]json.RawMessage
	if err := json.Unmarshal(out, &peer); err != nil {
		t.Fatal(err)
	}
	keys := []string{"OriginalFilename", "InternalName", "FileDescription", "ProductName"}
	bad := 0
	for _, p := range names {
		vi, err := readVI(imgs[p])
		if err != nil {
			continue // refused: blocked whatever it says
		}
		for _, tbl := range peer[p] {
			var entries map[string]string
			if json.Unmarshal(tbl[1], &entries) != nil {
				t.Fatalf("pefile output %s", tbl)
			}
			for k, v := range bmpOnly(entries) {
				if !slices.Contains(keys, k) || v == "" {
					continue
				}
				var rs []Reading
				if vi != nil {
					rs, _ = vi.Readings(k)
				}
				if !slices.ContainsFunc(rs, func(r Reading) bool { return r.Strings[k] == v }) {
					if bad++; bad <= 10 {
						t.Errorf("%s: pefile reads %s = %q, which is none of our readings", filepath.Base(p), k, v)
					}
				}
			}
		}
	}
}

// mutantScript prints, as JSON, every string table pefile reads from each
// file (null for a file it cannot read).
const mutantScript = `
import json, sys, pefile
out = {}
for name in sys.argv[1:]:
    try:
        p = pefile.PE(name, fast_load=True)
        p.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY['IMAGE_DIRECTORY_ENTRY_RESOURCE']])
        out[name] = [[st.LangID.decode('latin1'), {k.decode('utf-8', 'replace'): v.decode('utf-8', 'replace') for k, v in st.entries.items()}]
                     for fi in getattr(p, 'FileInfo', []) for e in fi if getattr(e, 'Key', b'') == b'StringFileInfo' for st in e.StringTable]
    except Exception:
        out[name] = None
print(json.dumps(out))
`
