package container

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// PAXAttrs returns the extended attributes a tar member's PAX records
// store, for Member.Attrs: SCHILY.xattr.NAME (GNU tar, archive/tar, and
// libarchive too), keyed by NAME. libarchive also writes and reads
// LIBARCHIVE.xattr.NAME, the name URL-encoded and the value base64, and
// bsdtar --xattrs lays down whichever of the two comes last, where GNU tar
// ignores it: a LIBARCHIVE record that does not decode to exactly the
// SCHILY record of the same attribute (or that has none) makes the
// extractors lay down different attributes, an error wrapping ErrMember
// (the member cannot be judged: its security.ima is not one value).
func PAXAttrs(records map[string]string) (map[string][]byte, error) {
	var attrs map[string][]byte
	var libarchive []string
	for k, v := range records {
		if a, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if attrs == nil {
				attrs = map[string][]byte{}
			}
			attrs[a] = []byte(v)
		} else if strings.HasPrefix(k, "LIBARCHIVE.xattr.") {
			libarchive = append(libarchive, k)
		}
	}
	sort.Strings(libarchive) // the first problem, always the same one
	for _, k := range libarchive {
		enc := strings.TrimPrefix(k, "LIBARCHIVE.xattr.")
		name, err := url.PathUnescape(enc)
		if err != nil {
			return attrs, fmt.Errorf("%w: the PAX record %q does not name an attribute bsdtar can decode", ErrMember, k)
		}
		v, err := base64.StdEncoding.DecodeString(records[k])
		if err != nil {
			if v, err = base64.RawStdEncoding.DecodeString(records[k]); err != nil {
				return attrs, fmt.Errorf("%w: the PAX record %q holds no base64 value", ErrMember, k)
			}
		}
		s, ok := attrs[name]
		if !ok || string(s) != string(v) {
			return attrs, fmt.Errorf("%w: the PAX record %q sets the attribute %s to what SCHILY.xattr.%s does not: bsdtar lays down one, GNU tar the other", ErrMember, k, name, name)
		}
	}
	return attrs, nil
}
