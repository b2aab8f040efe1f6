package service

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// ParseEKAllowlist reads an EK allowlist file (Trust.EKAllowlist): one
// EKKeySHA256 per line, 64 hex digits, with blank lines and # comments
// (to the end of the line) ignored. A line that is not 64 hex digits is an
// error naming it ("line 3: ..."). The caller caps the size of data.
func ParseEKAllowlist(data []byte) ([][32]byte, error) {
	var out [][32]byte
	for i, line := range strings.Split(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		v, err := hex.DecodeString(line)
		if err != nil || len(v) != 32 {
			return nil, fmt.Errorf("line %d: want 64 hex digits (SHA-256 of an EK public key)", i+1)
		}
		out = append(out, [32]byte(v))
	}
	return out, nil
}
