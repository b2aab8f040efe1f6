// Package ps is the Authenticode subject for PowerShell scripts: the files
// PowerShell's subject interface package (pwrshsip.dll, SIP GUID
// {603BCC1F-4B59-4E08-B724-D2C6297EF351}) signs and verifies: .ps1, .psm1
// and .psd1 (comments "# ...") and .ps1xml, .psc1 and .cdxml (XML comments
// "<!-- ... -->"). Scripts have no magic number: the kind is told by the
// file name's extension ([SyntaxOf]).
//
// # The signature block
//
// A signed script ends with its signature block: a line break, the begin
// line ("# SIG # Begin signature block", or "<!-- SIG # Begin signature
// block -->" in the XML kinds), the signature (a DER PKCS#7 ContentInfo)
// in base64, in comment lines ("# MIIF..." or "<!-- MIIF... -->"), and the
// end line ("# SIG # End signature block"), each line ended by the same
// line break (CRLF as PowerShell, signtool and osslsigncode write it, or
// LF), then one more line break or none. The block is in the script's
// encoding. [Parse] reads it from the end of the file and accepts nothing
// else: a begin line that does not end the file (a truncated block, text
// after the end line, or a second block) is found by the [Digester], a
// comment line that is not base64, base64 that does not decode, lines
// ended unlike the rest, or a block over limits.MaxScriptSignatureBlock
// bytes make the script malformed, so that no byte rides along outside
// what the signature covers.
//
// # The digest
//
// The digest (the "SIP hash", which WDAC hash rules for scripts compare as
// their Authenticode hash) is the hash of the script's text before its
// signature block (the line break that opens the block excluded), as
// UTF-16LE: a UTF-16LE file's bytes as they are (its byte order mark
// included), a UTF-8 file transcoded (a UTF-8 byte order mark becomes
// U+FEFF, FF FE). osslsigncode 2.9 (script.c) and jsign (SignableScript)
// hash the same bytes. A script whose text Windows may read otherwise is
// refused rather than given a digest Windows might not compute: a file
// without a byte order mark that holds a byte over 0x7F (Windows
// PowerShell reads such files in the system's ANSI code page,
// osslsigncode as UTF-8, jsign some kinds as Latin-1) or a NUL byte (as
// UTF-16 without a byte order mark does, which Windows may detect), a
// UTF-16 big-endian file, a UTF-32 little-endian one (its byte order mark FF FE
// 00 00, which PowerShell reads as UTF-32 and the peers as UTF-16LE
// starting with U+0000), invalid UTF-8, an unpaired UTF-16 surrogate, or a
// UTF-16LE file of an odd number of bytes.
//
// # Which signatures count
//
// A signature counts for Windows when its SpcIndirectDataContent names
// SPC_SIPINFO_OBJID with PowerShell's SIP GUID; csv cannot establish that
// Windows reads the signatures nested in a script's signature
// (Get-AuthenticodeSignature and PowerShell's execution policy read the
// primary signature), so it verifies and reports them, and deny rules
// match them, but they do not count for Windows. UEFI firmware runs no
// scripts.
package ps

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
)

// Format is how messages name the format.
const Format = "PowerShell script"

// OIDSpcSipInfo is SPC_SIPINFO_OBJID, the data type script signatures
// name.
var OIDSpcSipInfo = authenticode.OIDSpcSipInfo

// SIPGUID is PowerShell's SIP GUID {603BCC1F-4B59-4E08-B724-D2C6297EF351}
// as an SpcSipInfo holds it (the first three fields little endian).
var SIPGUID = []byte{0x1f, 0xcc, 0x3b, 0x60, 0x59, 0x4b, 0x08, 0x4e, 0xb7, 0x24, 0xd2, 0xc6, 0x29, 0x7e, 0xf3, 0x51}

// Syntax is how a kind of script writes its comments, and so its
// signature block.
type Syntax int

// Syntaxes.
const (
	// SyntaxHash: "# " comments (.ps1, .psm1, .psd1).
	SyntaxHash Syntax = iota + 1
	// SyntaxXML: "<!-- ... -->" comments (.ps1xml, .psc1, .cdxml).
	SyntaxXML
)

// Extensions are the file name extensions of the scripts PowerShell's SIP
// signs, in lower case, with their syntax.
var Extensions = map[string]Syntax{
	".ps1": SyntaxHash, ".psm1": SyntaxHash, ".psd1": SyntaxHash,
	".ps1xml": SyntaxXML, ".psc1": SyntaxXML, ".cdxml": SyntaxXML,
}

// SyntaxOf returns the syntax of the script named name (a file name or
// path), by its extension ([Ext]); false if it is not a script
// PowerShell's SIP signs.
func SyntaxOf(name string) (Syntax, bool) {
	s, ok := Extensions[Ext(name)]
	return s, ok
}

// Ext returns the extension of the file named name (a file name or path)
// as Windows tells it, in lower case: after the dots and spaces that end
// the name, which Windows drops from a path it opens (Win32 path
// normalization), so that "run.ps1." and "run.ps1 " are the script
// "run.ps1" they become on a Windows host; and with U+017F (long s) as
// "s", which it upper-cases to "S", as .NET's case-insensitive ordinal
// comparison does ("run.pſ1" may be run as a script: judging it as one
// blocks more, never less).
func Ext(name string) string {
	ext := strings.ToLower(path.Ext(strings.TrimRight(strings.ReplaceAll(name, `\`, "/"), ". ")))
	return strings.ReplaceAll(ext, "\u017f", "s")
}

func (s Syntax) open() string {
	if s == SyntaxXML {
		return "<!-- "
	}
	return "# "
}

func (s Syntax) close() string {
	if s == SyntaxXML {
		return " -->"
	}
	return ""
}

// beginLine and endLine are the block's first and last lines.
func (s Syntax) beginLine() string { return lines[s].begin }
func (s Syntax) endLine() string   { return lines[s].end }

var lines = map[Syntax]struct{ begin, end string }{
	SyntaxHash: {"# SIG # Begin signature block", "# SIG # End signature block"},
	SyntaxXML:  {"<!-- SIG # Begin signature block -->", "<!-- SIG # End signature block -->"},
}

// Encoding is a script file's text encoding.
type Encoding int

// Encodings.
const (
	// UTF8 is UTF-8 without a byte order mark (ASCII, as csv accepts it).
	UTF8 Encoding = iota + 1
	// UTF8BOM is UTF-8 with a byte order mark (EF BB BF).
	UTF8BOM
	// UTF16LE is UTF-16 little endian with a byte order mark (FF FE).
	UTF16LE
)

func (e Encoding) String() string {
	switch e {
	case UTF8:
		return "UTF-8 (no byte order mark)"
	case UTF8BOM:
		return "UTF-8 with byte order mark"
	case UTF16LE:
		return "UTF-16LE"
	}
	return fmt.Sprintf("Encoding(%d)", int(e))
}

// unit is the size of a code unit.
func (e Encoding) unit() int {
	if e == UTF16LE {
		return 2
	}
	return 1
}

// Script is a PowerShell script's layout: its encoding, where its text
// ends and its signature block, if any, begins. It is the Authenticode
// subject of the script.
type Script struct {
	Syntax   Syntax
	Encoding Encoding
	Size     int64
	// Content is the size of the text the digest covers: the offset of
	// the signature block (its opening line break), or Size when the
	// script is unsigned.
	Content int64
	// Lines is the number of base64 lines in the block, LineBreak the
	// line break the block's lines end with ("" when unsigned).
	Lines     int
	LineBreak string

	stored []authenticode.Stored
}

var _ authenticode.Subject = (*Script)(nil)

func malformed(off int64, format string, args ...any) *signing.MalformedError {
	return &signing.MalformedError{Format: Format, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// Signed reports whether the script has a signature block.
func (s *Script) Signed() bool { return len(s.stored) > 0 }

// Block returns the signature's DER, as decoded from the block (nil when
// unsigned).
func (s *Script) Block() []byte {
	if len(s.stored) == 0 {
		return nil
	}
	return s.stored[0].DER
}

// Parse reads the layout of the script in r (size bytes) of the given
// syntax: its encoding (from its first bytes) and its signature block
// (from its end). Errors are *signing.MalformedError values (wrapping
// signing.ErrLimit for the cap), or read errors. What lies before the
// block is checked by the [Digester] as the file streams.
func Parse(r io.ReaderAt, size int64, syntax Syntax) (*Script, error) {
	if syntax != SyntaxHash && syntax != SyntaxXML {
		return nil, fmt.Errorf("ps: unknown syntax %d", syntax)
	}
	s := &Script{Syntax: syntax, Size: size, Content: size, Encoding: UTF8}
	var head [4]byte
	n, err := r.ReadAt(head[:min(size, 4)], 0)
	if int64(n) < min(size, 4) {
		return nil, readError(err)
	}
	switch {
	case n == 4 && head == [4]byte{0xff, 0xfe, 0, 0}:
		// .NET's StreamReader, which PowerShell reads scripts with, takes
		// FF FE 00 00 for UTF-32LE's byte order mark.
		return nil, malformed(0, "a UTF-32 little-endian byte order mark (FF FE 00 00): PowerShell reads the script as UTF-32, "+
			"csv cannot establish the digest Windows computes for it (osslsigncode reads it as UTF-16LE); save it as UTF-8 with a byte order mark or as UTF-16LE")
	case n >= 2 && head[0] == 0xff && head[1] == 0xfe:
		s.Encoding = UTF16LE
		if size%2 != 0 {
			return nil, malformed(size-1, "a UTF-16LE script of %d bytes, an odd number", size)
		}
	case n >= 2 && head[0] == 0xfe && head[1] == 0xff:
		return nil, malformed(0, "a UTF-16 big-endian byte order mark: csv cannot establish the digest Windows computes for a UTF-16BE script "+
			"(osslsigncode reads it as UTF-8); save it as UTF-8 with a byte order mark or as UTF-16LE")
	case n >= 3 && head[0] == 0xef && head[1] == 0xbb && head[2] == 0xbf:
		s.Encoding = UTF8BOM
	}
	if err := s.parseBlock(r); err != nil {
		return nil, err
	}
	return s, nil
}

func readError(err error) error {
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("ps: reading the script: %w", err)
}

// parseBlock finds and decodes the signature block at the end of the file.
func (s *Script) parseBlock(r io.ReaderAt) error {
	// Most scripts are unsigned: a look at their last bytes says so.
	// Then the block is read from a tail of 64 KiB (a signature with its
	// chain and a timestamp is some 15 KB of block, twice as much in
	// UTF-16), and only a larger block from a tail of the cap.
	for _, want := range []int{128, firstTail, limits.MaxScriptSignatureBlock} {
		err := s.parseTail(r, want, want == limits.MaxScriptSignatureBlock)
		if err != errMore {
			return err
		}
	}
	return nil
}

// firstTail is the tail a block is looked for in first.
const firstTail = 64 << 10

// errMore: the tail read does not hold the whole block.
var errMore = errors.New("more")

var tails = sync.Pool{New: func() any { b := make([]byte, firstTail+4); return &b }}

// parseTail parses the block in the last want bytes of the file (and a
// trailing line break); unless final, it returns errMore when the block
// may be longer, or nil when the file has no end line.
func (s *Script) parseTail(r io.ReaderAt, want int, final bool) error {
	unit := s.Encoding.unit()
	tailLen := min(s.Size, int64(want+2*unit))
	tailStart := s.Size - tailLen
	if unit == 2 && tailStart%2 != 0 {
		tailStart++
		tailLen--
	}
	var tail []byte
	if tailLen <= firstTail+4 {
		bp := tails.Get().(*[]byte)
		defer tails.Put(bp)
		tail = (*bp)[:tailLen]
	} else {
		tail = make([]byte, tailLen)
	}
	if n, err := r.ReadAt(tail, tailStart); int64(n) < tailLen {
		return readError(err)
	}
	// v is the tail's text as bytes: ASCII as it is, every other code
	// unit 0xff (the block is ASCII; text before it is not read here),
	// made in place.
	v := tail
	if unit == 2 {
		v = tail[:tailLen/2]
		for i := range v {
			lo, hi := tail[2*i], tail[2*i+1]
			if hi == 0 && lo < 0x80 {
				v[i] = lo
			} else {
				v[i] = 0xff
			}
		}
	}
	more := !final && tailStart > 0
	off := func(i int) int64 { return tailStart + int64(i*unit) }

	end := len(v)
	trail := ""
	switch {
	case bytes.HasSuffix(v, []byte("\r\n")):
		end, trail = end-2, "\r\n"
	case bytes.HasSuffix(v, []byte("\n")):
		end, trail = end-1, "\n"
	}
	endLine := s.Syntax.endLine()
	if !bytes.HasSuffix(v[:end], []byte(endLine)) {
		return nil // unsigned (the Digester finds a begin line in the text)
	}
	fstart := end - len(endLine)
	if fstart < 2 && more {
		return errMore
	}
	var eol string
	switch {
	case fstart >= 2 && string(v[fstart-2:fstart]) == "\r\n":
		eol = "\r\n"
	case fstart >= 1 && v[fstart-1] == '\n':
		eol = "\n"
	default:
		return malformed(off(fstart), "the signature block's end line %q does not start a line", endLine)
	}
	if trail != "" && trail != eol {
		return malformed(off(end), "the signature block's end line ends with %q, its other lines with %q", trail, eol)
	}
	open, closing, begin := s.Syntax.open(), s.Syntax.close(), s.Syntax.beginLine()
	var b64s [][]byte // base64, last line first
	lineEnd := fstart - len(eol)
	lineEnd0 := lineEnd
	hstart := -1
	for hstart < 0 {
		ls := bytes.LastIndexByte(v[:lineEnd], '\n') + 1
		line := v[ls:lineEnd]
		switch {
		case string(line) == begin:
			hstart = ls
			continue
		case ls == 0 && more:
			return errMore
		case ls == 0 && tailStart > 0:
			return &signing.MalformedError{Format: Format, Offset: off(fstart), Err: signing.ErrLimit,
				Reason: fmt.Sprintf("limit exceeded: the signature block ending here is larger than %d bytes (or has no begin line)", limits.MaxScriptSignatureBlock)}
		case ls == 0:
			return malformed(off(fstart), "the signature block's end line has no begin line %q before it", begin)
		}
		b64, ok := bytes.CutPrefix(line, []byte(open))
		if ok {
			b64, ok = bytes.CutSuffix(b64, []byte(closing))
		}
		if !ok || len(b64) == 0 || !isBase64(b64) {
			if eol == "\n" && bytes.HasSuffix(line, []byte("\r")) {
				return malformed(off(ls), "a line of the signature block ends with CRLF, others with LF")
			}
			return malformed(off(ls), "a line of the signature block is not a comment %q holding base64 text", open+"..."+closing)
		}
		b64s = append(b64s, b64)
		if ls < len(eol) || string(v[ls-len(eol):ls]) != eol || (eol == "\n" && ls >= 2 && v[ls-2] == '\r') {
			return malformed(off(ls), "a line of the signature block is not ended by %q as the others are", eol)
		}
		lineEnd = ls - len(eol)
	}
	switch {
	case hstart < len(eol)+2 && more:
		return errMore // the line before the block is checked too
	case hstart < len(eol) && tailStart > 0:
		return &signing.MalformedError{Format: Format, Offset: off(hstart), Err: signing.ErrLimit,
			Reason: fmt.Sprintf("limit exceeded: the signature block is larger than %d bytes", limits.MaxScriptSignatureBlock)}
	case hstart < len(eol):
		return malformed(off(hstart), "the signature block starts the file: there is no script before it")
	case string(v[hstart-len(eol):hstart]) != eol:
		return malformed(off(hstart), "the line before the signature block is not ended by %q, as the block's lines are", eol)
	case eol == "\n" && hstart >= 2 && v[hstart-2] == '\r':
		// osslsigncode would hash the CR, jsign would not.
		return malformed(off(hstart-2), "the line before the signature block ends with CRLF, the block's lines with LF")
	}
	s.Content = off(hstart - len(eol))
	if s.Content == 0 {
		// osslsigncode finds no signature there.
		return malformed(0, "the signature block starts the file: there is no script before it")
	}
	b64 := make([]byte, 0, lineEnd0-hstart)
	for i := len(b64s) - 1; i >= 0; i-- {
		b64 = append(b64, b64s[i]...)
	}
	der := make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
	n, err := base64.StdEncoding.Strict().Decode(der, b64)
	if err != nil {
		return malformed(off(hstart), "the signature block's base64 does not decode: %v", err)
	}
	s.Lines, s.LineBreak = len(b64s), eol
	s.stored = []authenticode.Stored{{Name: "signature block", Offset: s.Content, DER: der[:n]}}
	return nil
}

func isBase64(b []byte) bool {
	for _, c := range b {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '/', c == '=':
		default:
			return false
		}
	}
	return true
}

// Format is "PowerShell script".
func (s *Script) Format() string { return Format }

// DigestName is what messages call a script's digest.
func (s *Script) DigestName() string { return "script digest" }

// Signatures returns the signature of the block (none when unsigned).
// Offsets in its errors are in the decoded DER.
func (s *Script) Signatures() []authenticode.Stored { return s.stored }

// IndirectData is SPC_SIPINFO_OBJID with an SpcSipInfo naming PowerShell's
// SIP, as PowerShell, signtool and osslsigncode write it.
func (s *Script) IndirectData() authenticode.IndirectData { return indirectData }

// IndirectData is the data type script signatures name (see
// Script.IndirectData), for a catalog member listing a script.
func IndirectData() authenticode.IndirectData { return indirectData }

// SIP is PowerShell's SIP GUID as catalogs name it (CAT_MEMBERINFO).
const SIP = "{603BCC1F-4B59-4E08-B724-D2C6297EF351}"

// indirectData: SpcSipInfo ::= SEQUENCE { dwSIPversion INTEGER (65536),
// gSIPguid OCTET STRING, five INTEGERs 0 }.
var indirectData = authenticode.SipInfo(65536, SIPGUID)

// Why hosts do not count a script's signature.
const (
	whyUEFI   = "UEFI firmware runs no scripts"
	whyNested = "csv cannot establish that Windows reads the signatures nested in a script's signature " +
		"(PowerShell's execution policy and Get-AuthenticodeSignature read the primary signature), so it does not count them"
)

// Judge records which hosts do not count sig: UEFI none, Windows none but
// the primary signature, and only if it names PowerShell's SIP.
func (s *Script) Judge(sig, parent *signing.Signature, data authenticode.IndirectData) {
	sig.Ignore(signing.HostUEFI, whyUEFI)
	if len(sig.Path) > 0 {
		sig.Ignore(signing.HostWindows, whyNested)
	}
	if why := sipMismatch(data); why != "" {
		sig.Ignore(signing.HostWindows, why)
	}
}

// sipMismatch says why data does not name PowerShell's SIP ("" if it
// does).
func sipMismatch(data authenticode.IndirectData) string {
	guid, typeOK, ok := authenticode.SipGUID(data)
	if !typeOK {
		return fmt.Sprintf("its SpcIndirectDataContent data type is %s, not SPC_SIPINFO_OBJID (1.3.6.1.4.1.311.2.1.30): Windows verifies a script with PowerShell's SIP only", data.Type)
	}
	if !ok {
		return "its SpcSipInfo does not parse: Windows verifies a script with PowerShell's SIP only"
	}
	if !bytes.Equal(guid, SIPGUID) {
		return fmt.Sprintf("its SpcSipInfo names SIP %x, not PowerShell's {603BCC1F-4B59-4E08-B724-D2C6297EF351}", []byte(guid))
	}
	return ""
}
