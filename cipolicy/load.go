package cipolicy

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	utf16pkg "unicode/utf16"
	"unicode/utf8"

	"github.com/codesignval/csv/internal/limits"
)

// ErrInvalidPolicy is wrapped by every error about a policy file's content.
var ErrInvalidPolicy = errors.New("cipolicy: invalid policy")

// Problem is one error found in a policy file.
type Problem struct {
	Line    int // 1-based; 0 when the problem has no line
	Message string
	// Err, if set, is the kind of problem (an IPE policy's ErrIPE
	// errors), which errors.Is finds through the LoadError.
	Err error
}

// LoadError lists everything wrong with a policy file. It is returned
// instead of stopping at the first problem, so that a user fixes a policy in
// one pass.
type LoadError struct {
	Source   string
	Problems []Problem
}

func (e *LoadError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Source)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
		b.WriteString(p.Message)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalidPolicy) true.
func (e *LoadError) Is(target error) bool { return target == ErrInvalidPolicy }

// Unwrap returns the kinds of the problems that have one.
func (e *LoadError) Unwrap() []error {
	var out []error
	for _, p := range e.Problems {
		if p.Err != nil {
			out = append(out, p.Err)
		}
	}
	return out
}

// Parse reads a policy from data, detecting its format by content: the
// project's YAML format, WDAC SiPolicy XML, or a Linux IPE policy (text
// whose first line is policy_name=...). source names the data in messages (a file
// name). The returned policy's SHA256 is that of data.
func Parse(data []byte, source string) (*Policy, error) {
	return ParseWith(data, source, ParseOptions{})
}

// ParseOptions configure ParseWith. The zero value reads nothing but data.
type ParseOptions struct {
	// ReadFile reads a file a policy refers to (a certificate_file), by the
	// name written in the policy. The caller decides where names resolve
	// (the CLI: relative to the policy file) and caps sizes; nil refuses
	// such references.
	ReadFile func(name string) ([]byte, error)
}

// ParseWith is Parse with options.
func ParseWith(data []byte, source string, opts ParseOptions) (*Policy, error) {
	if len(data) > limits.MaxPolicyFile {
		return nil, &LoadError{Source: source, Problems: []Problem{{Message: fmt.Sprintf("policy is %d bytes, over the limit of %d", len(data), limits.MaxPolicyFile)}}}
	}
	text, utf16, err := decodeText(data)
	if err != nil {
		return nil, &LoadError{Source: source, Problems: []Problem{{Message: err.Error()}}}
	}
	var p *Policy
	switch sniff(text) {
	case "ipe":
		if utf16 {
			return nil, &LoadError{Source: source, Problems: []Problem{{Message: "IPE policy is UTF-16: the kernel reads IPE policies as ASCII text (save it as UTF-8 without a byte order mark)", Err: ErrIPEText}}}
		}
		p, err = ParseIPE(data, source)
	case "xml":
		p, err = parseXML(text, source, utf16)
	default:
		p, err = parseYAML(text, source, opts)
	}
	if err != nil {
		return nil, err
	}
	p.Source = source
	p.SHA256 = sha256.Sum256(data)
	return p, nil
}

// sniff tells an IPE policy by its header (isIPE), and XML from YAML by
// the first non-space byte after an optional UTF-8 byte order mark.
func sniff(data []byte) string {
	if isIPE(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))) {
		return "ipe"
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	data = bytes.TrimLeft(data, " \t\r\n")
	if bytes.HasPrefix(data, []byte("<")) {
		return "xml"
	}
	return "yaml"
}

// decodeText returns a policy file's text as UTF-8. A file that starts with
// a UTF-16 byte order mark (Windows PowerShell 5.1 writes XML so) is
// transcoded; one that looks like UTF-16 without a mark, or is UTF-32, is
// refused with what is wrong, rather than read as bytes that happen to
// parse. utf16 says the file was UTF-16.
func decodeText(data []byte) (text []byte, utf16 bool, err error) {
	var order binary.ByteOrder
	switch {
	case bytes.HasPrefix(data, []byte{0xff, 0xfe, 0, 0}), bytes.HasPrefix(data, []byte{0, 0, 0xfe, 0xff}):
		return nil, false, errors.New("policy is UTF-32: save it as UTF-8 (or UTF-16 with a byte order mark)")
	case bytes.HasPrefix(data, []byte{0xff, 0xfe}):
		order = binary.LittleEndian
	case bytes.HasPrefix(data, []byte{0xfe, 0xff}):
		order = binary.BigEndian
	default:
		// "<" or a letter with a NUL beside it: UTF-16 without a mark.
		if len(data) >= 4 && ((data[0] == 0 && data[1] != 0 && data[2] == 0) || (data[0] != 0 && data[1] == 0 && data[3] == 0)) {
			return nil, false, errors.New("policy looks like UTF-16 without a byte order mark: save it as UTF-8, or as UTF-16 with a byte order mark")
		}
		return data, false, nil
	}
	body := data[2:]
	if len(body)%2 != 0 {
		return nil, false, fmt.Errorf("policy is UTF-16 (byte order mark) but has an odd number of bytes (%d)", len(data))
	}
	units := make([]uint16, len(body)/2)
	for i := range units {
		units[i] = order.Uint16(body[2*i:])
	}
	out := make([]byte, 0, len(body))
	for i := 0; i < len(units); i++ {
		c := rune(units[i])
		switch {
		case utf16pkg.IsSurrogate(c) && c < 0xdc00 && i+1 < len(units) && units[i+1] >= 0xdc00 && units[i+1] < 0xe000:
			c = utf16pkg.DecodeRune(c, rune(units[i+1]))
			i++
		case utf16pkg.IsSurrogate(c):
			return nil, false, fmt.Errorf("policy is not valid UTF-16: unpaired surrogate %#04x at byte offset %d", c, 2+2*i)
		}
		out = utf8.AppendRune(out, c)
	}
	return out, true, nil
}
