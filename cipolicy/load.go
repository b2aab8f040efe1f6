package cipolicy

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/codesignval/csv/internal/limits"
)

// ErrInvalidPolicy is wrapped by every error about a policy file's content.
var ErrInvalidPolicy = errors.New("invalid policy")

// Problem is one error found in a policy file.
type Problem struct {
	Line    int // 1-based; 0 when the problem has no line
	Message string
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

// Parse reads a policy from data, detecting its format by content: the
// project's YAML format or WDAC SiPolicy XML. source names the data in messages (a file
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
	var p *Policy
	var err error
	switch sniff(data) {
	case "xml":
		p, err = parseXML(data, source)
	default:
		p, err = parseYAML(data, source, opts)
	}
	if err != nil {
		return nil, err
	}
	p.Source = source
	p.SHA256 = sha256.Sum256(data)
	return p, nil
}

// sniff tells XML from YAML by the first non-space byte after an optional
// UTF-8 byte order mark.
func sniff(data []byte) string {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	data = bytes.TrimLeft(data, " \t\r\n")
	if bytes.HasPrefix(data, []byte("<")) {
		return "xml"
	}
	return "yaml"
}
