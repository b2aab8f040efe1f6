// Package testappx builds MSIX/APPX packages for tests, as MakeAppx lays
// them out: the payload files and AppxManifest.xml (deflated in 64 KiB
// blocks, each flushed so that the block map can give its compressed
// size, or stored), AppxBlockMap.xml and [Content_Types].xml; and runs
// osslsigncode, the independent signer and verifier of APPX signatures.
// No tool builds packages here (MakeAppx is Windows-only): the block map
// follows Microsoft's schema, which csv checks and osslsigncode does not
// read.
package testappx

import (
	"bytes"
	"compress/flate"
	"crypto"
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
)

// File is a payload file.
type File struct {
	Name  string // the part name, '/'-separated (as in the zip)
	Data  []byte
	Store bool // stored, not deflated
}

// Options describe a package.
type Options struct {
	Files []File
	// Publisher is the manifest's Identity Publisher (default: testca's
	// leaf subject, "CN=Test Code Signing, O=csv tests").
	Publisher string
	// HashMethod is the block map's (default SHA-256).
	HashMethod crypto.Hash
	// DataDescriptor writes every record with a data descriptor.
	DataDescriptor bool
	// CodeIntegrity, if not nil, is AppxMetadata/CodeIntegrity.cat.
	CodeIntegrity []byte
	// Bundle writes AppxMetadata/AppxBundleManifest.xml instead of
	// AppxManifest.xml.
	Bundle bool
	// Manifest, if not nil, replaces the generated manifest.
	Manifest []byte
	// Zip64 ends the zip with zip64 end records, the end record's fields
	// all ones (disk numbers included, as MakeAppx writes them), and
	// makes data descriptors 24 bytes.
	Zip64 bool
	// EditBlockMap, if not nil, rewrites the block map's text (for tests
	// of block maps that do not describe the package).
	EditBlockMap func(string) string
}

// DefaultPublisher is testca's default leaf subject as a Publisher.
const DefaultPublisher = "CN=Test Code Signing, O=csv tests"

var methods = map[crypto.Hash]string{
	crypto.SHA256: "http://www.w3.org/2001/04/xmlenc#sha256",
	crypto.SHA384: "http://www.w3.org/2001/04/xmldsig-more#sha384",
	crypto.SHA512: "http://www.w3.org/2001/04/xmlenc#sha512",
}

type record struct {
	name               string
	method             uint16
	flags              uint16
	crc                uint32
	csize, usize       int
	offset             int
	lfh                int
	blocks             [][]byte // hashes
	blockSizes         []int    // compressed sizes (deflated)
	inBlockMap, stored bool
}

// Build returns the package's bytes.
func Build(t testing.TB, o Options) []byte {
	t.Helper()
	if o.Publisher == "" {
		o.Publisher = DefaultPublisher
	}
	if o.HashMethod == 0 {
		o.HashMethod = crypto.SHA256
	}
	files := append([]File{}, o.Files...)
	if o.CodeIntegrity != nil {
		files = append(files, File{Name: "AppxMetadata/CodeIntegrity.cat", Data: o.CodeIntegrity})
	}
	manifest := o.Manifest
	if manifest == nil {
		root, ns := "Package", "http://schemas.microsoft.com/appx/manifest/foundation/windows10"
		if o.Bundle {
			root, ns = "Bundle", "http://schemas.microsoft.com/appx/2013/bundle"
		}
		manifest = fmt.Appendf(nil, `<?xml version="1.0" encoding="utf-8"?>
<%s xmlns="%s"><Identity Name="Csv.Test" Publisher="%s" Version="1.0.0.0" ProcessorArchitecture="x64"/><Properties><DisplayName>csv test</DisplayName></Properties></%s>
`, root, ns, xmlEscape(o.Publisher), root)
	}
	if o.Bundle {
		files = append(files, File{Name: "AppxMetadata/AppxBundleManifest.xml", Data: manifest})
	} else {
		files = append(files, File{Name: "AppxManifest.xml", Data: manifest})
	}
	var out bytes.Buffer
	var recs []*record
	for _, f := range files {
		recs = append(recs, writeFile(&out, f, o, true))
	}
	var bm strings.Builder
	fmt.Fprintf(&bm, `<?xml version="1.0" encoding="UTF-8" standalone="no"?>`+"\n"+`<BlockMap xmlns="http://schemas.microsoft.com/appx/2010/blockmap" HashMethod="%s">`, methods[o.HashMethod])
	for _, r := range recs {
		fmt.Fprintf(&bm, `<File Name="%s" Size="%d" LfhSize="%d">`, xmlEscape(partName(r.name)), r.usize, r.lfh)
		for i, h := range r.blocks {
			if r.stored {
				fmt.Fprintf(&bm, `<Block Hash="%s"/>`, base64.StdEncoding.EncodeToString(h))
			} else {
				fmt.Fprintf(&bm, `<Block Hash="%s" Size="%d"/>`, base64.StdEncoding.EncodeToString(h), r.blockSizes[i])
			}
		}
		bm.WriteString(`</File>`)
	}
	bm.WriteString("</BlockMap>\n")
	bmText := bm.String()
	if o.EditBlockMap != nil {
		bmText = o.EditBlockMap(bmText)
	}
	recs = append(recs, writeFile(&out, File{Name: "AppxBlockMap.xml", Data: []byte(bmText)}, o, false))
	ct := `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="exe" ContentType="application/x-msdownload"/><Default Extension="dll" ContentType="application/x-msdownload"/><Override PartName="/AppxManifest.xml" ContentType="application/vnd.ms-appx.manifest+xml"/><Override PartName="/AppxBlockMap.xml" ContentType="application/vnd.ms-appx.blockmap+xml"/></Types>` + "\n"
	recs = append(recs, writeFile(&out, File{Name: "[Content_Types].xml", Data: []byte(ct)}, o, false))
	cdAt := out.Len()
	le := binary.LittleEndian
	for _, r := range recs {
		h := make([]byte, 46)
		le.PutUint32(h, 0x02014b50)
		le.PutUint16(h[4:], 45)
		le.PutUint16(h[6:], 20)
		le.PutUint16(h[8:], r.flags)
		le.PutUint16(h[10:], r.method)
		le.PutUint16(h[12:], 0x6000)
		le.PutUint16(h[14:], 0x5b87)
		le.PutUint32(h[16:], r.crc)
		le.PutUint32(h[20:], uint32(r.csize))
		le.PutUint32(h[24:], uint32(r.usize))
		le.PutUint16(h[28:], uint16(len(r.name)))
		le.PutUint32(h[42:], uint32(r.offset))
		out.Write(h)
		out.WriteString(r.name)
	}
	cdSize := out.Len() - cdAt
	e := make([]byte, 22)
	le.PutUint32(e, 0x06054b50)
	le.PutUint16(e[8:], uint16(len(recs)))
	le.PutUint16(e[10:], uint16(len(recs)))
	le.PutUint32(e[12:], uint32(cdSize))
	le.PutUint32(e[16:], uint32(cdAt))
	if o.Zip64 {
		z := make([]byte, 56)
		le.PutUint32(z, 0x06064b50)
		le.PutUint64(z[4:], 44)
		le.PutUint16(z[12:], 45)
		le.PutUint16(z[14:], 45)
		le.PutUint64(z[24:], uint64(len(recs)))
		le.PutUint64(z[32:], uint64(len(recs)))
		le.PutUint64(z[40:], uint64(cdSize))
		le.PutUint64(z[48:], uint64(cdAt))
		l := make([]byte, 20)
		le.PutUint32(l, 0x07064b50)
		le.PutUint64(l[8:], uint64(out.Len()))
		le.PutUint32(l[16:], 1)
		out.Write(z)
		out.Write(l)
		for i := 4; i < 20; i++ {
			e[i] = 0xff
		}
	}
	out.Write(e)
	return out.Bytes()
}

// partName is the block map's name of a zip member: percent-decoded,
// with Windows separators.
func partName(name string) string {
	s, err := url.PathUnescape(name)
	if err != nil {
		panic(err)
	}
	return strings.ReplaceAll(s, "/", `\`)
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	if err := xmlEscapeTo(&b, s); err != nil {
		panic(err)
	}
	return b.String()
}

func xmlEscapeTo(b *bytes.Buffer, s string) error {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")
	_, err := r.WriteString(b, s)
	return err
}

// writeFile writes one local record; blocks are hashed (for the block
// map) when inBlockMap.
func writeFile(out *bytes.Buffer, f File, o Options, inBlockMap bool) *record {
	r := &record{name: f.Name, offset: out.Len(), usize: len(f.Data), crc: crc32.ChecksumIEEE(f.Data), stored: f.Store, inBlockMap: inBlockMap}
	var data []byte
	if f.Store {
		data = f.Data
	} else {
		r.method = 8
		var buf bytes.Buffer
		fw, _ := flate.NewWriter(&buf, flate.BestSpeed)
		last := 0
		for i := 0; i < len(f.Data); i += 65536 {
			fw.Write(f.Data[i:min(i+65536, len(f.Data))])
			if i+65536 < len(f.Data) {
				fw.Flush()
				r.blockSizes = append(r.blockSizes, buf.Len()-last)
				last = buf.Len()
			}
		}
		fw.Close()
		if len(f.Data) > 0 {
			r.blockSizes = append(r.blockSizes, buf.Len()-last)
		}
		data = buf.Bytes()
	}
	for i := 0; i < len(f.Data); i += 65536 {
		h := o.HashMethod.New()
		h.Write(f.Data[i:min(i+65536, len(f.Data))])
		r.blocks = append(r.blocks, h.Sum(nil))
	}
	r.csize = len(data)
	if o.DataDescriptor {
		r.flags = 8
	}
	le := binary.LittleEndian
	h := make([]byte, 30)
	le.PutUint32(h, 0x04034b50)
	le.PutUint16(h[4:], 20)
	le.PutUint16(h[6:], r.flags)
	le.PutUint16(h[8:], r.method)
	le.PutUint16(h[10:], 0x6000)
	le.PutUint16(h[12:], 0x5b87)
	if !o.DataDescriptor {
		le.PutUint32(h[14:], r.crc)
		le.PutUint32(h[18:], uint32(r.csize))
		le.PutUint32(h[22:], uint32(r.usize))
	}
	le.PutUint16(h[26:], uint16(len(f.Name)))
	out.Write(h)
	out.WriteString(f.Name)
	r.lfh = 30 + len(f.Name)
	out.Write(data)
	if o.DataDescriptor && o.Zip64 {
		d := make([]byte, 24)
		le.PutUint32(d, 0x08074b50)
		le.PutUint32(d[4:], r.crc)
		le.PutUint64(d[8:], uint64(r.csize))
		le.PutUint64(d[16:], uint64(r.usize))
		out.Write(d)
	} else if o.DataDescriptor {
		d := make([]byte, 16)
		le.PutUint32(d, 0x08074b50)
		le.PutUint32(d[4:], r.crc)
		le.PutUint32(d[8:], uint32(r.csize))
		le.PutUint32(d[12:], uint32(r.usize))
		out.Write(d)
	}
	return r
}

// Env is the environment for osslsigncode, without proxies.
func Env() []string {
	return testenv.NoProxyEnv()
}

// Sign signs data with osslsigncode sign (which takes the hash from the
// block map).
func Sign(t testing.TB, files testca.Files, data []byte, args ...string) []byte {
	t.Helper()
	return testenv.OsslSign(t, files.Chain, files.Key, "appx", data, args...)
}

var current = regexp.MustCompile(`Checking ([A-Za-z ]+) hashes:\s*\n[^\n]*\n\s*Current message digest\s*:\s*([0-9A-Fa-f]+)\s*\n\s*Calculated message digest\s*:\s*([0-9A-Fa-f]+)`)

// Tags maps the names osslsigncode's verify gives the APPX digests to
// their tags.
var Tags = map[string]string{
	"Block Map": "AXBM", "Content Types": "AXCT", "Data": "AXPC",
	"Central Directory": "AXCD", "Code Integrity": "AXCI",
}

// Verify runs osslsigncode verify on data at testca's epoch; it returns
// whether osslsigncode accepts it, the digests it calculated by tag
// (AXPC, AXCD, ...; lower-case hex) and its output.
func Verify(t testing.TB, files testca.Files, data []byte) (bool, map[string]string, string) {
	t.Helper()
	ossl := testenv.Tool(t, "osslsigncode")
	path := filepath.Join(t.TempDir(), "v.appx")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ossl, "verify", "-CAfile", files.Root, "-time", strconv.FormatInt(testca.Epoch.Unix(), 10), "-in", path)
	cmd.Env = Env()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running osslsigncode: %v", err)
	}
	digests := map[string]string{}
	for _, m := range current.FindAllStringSubmatch(string(out), -1) {
		digests[Tags[m[1]]] = strings.ToLower(m[3])
	}
	return err == nil, digests, string(out)
}
