package msi

import "strings"

// TablePrefix starts the decoded name of a database table's stream
// (U+4840 as stored): tables are the database, not files it installs.
const TablePrefix = "\u4840"

// DecodeName decodes a stream name as Windows Installer stores it (and
// msitools decodes it): characters U+3800 to U+47FF each hold two
// characters of the alphabet 0-9 A-Z a-z . _ (the low six bits first),
// U+4800 to U+483F one; U+4840 (a table's prefix) and every other
// character stand for themselves.
func DecodeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 0x3800 && r < 0x4800:
			r -= 0x3800
			b.WriteByte(mime(byte(r & 0x3f)))
			b.WriteByte(mime(byte(r >> 6 & 0x3f)))
		case r >= 0x4800 && r < 0x4840:
			b.WriteByte(mime(byte(r - 0x4800)))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func mime(x byte) byte {
	switch {
	case x < 10:
		return '0' + x
	case x < 36:
		return 'A' + x - 10
	case x < 62:
		return 'a' + x - 36
	case x == 62:
		return '.'
	}
	return '_'
}
