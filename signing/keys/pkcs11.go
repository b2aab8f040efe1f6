package keys

// PKCS#11 key references (RFC 7512 URIs), for keys held in an HSM or a
// smart card.
//
// The token is driven through github.com/miekg/pkcs11, a thin cgo binding
// of the PKCS#11 C API (the binding crypto11 and cosign's pkcs11key are
// built on), with the crypto.Signer written here (pkcs11_cgo.go): it is
// about 250 lines for RSA PKCS#1 v1.5, RSA-PSS and ECDSA. crypto11 was not
// taken: its module path moved twice in 2026 (ThalesIgnite/crypto11, last
// released 2021; ThalesGroup/crypto11; eclipse-keypont/crypto11, which the
// Go module proxy refuses) and its v2 replaces miekg/pkcs11 with another
// binding, while csv needs none of its key generation, session pool or
// encryption. cgo is needed to load a PKCS#11 module at all: a build
// without cgo (CGO_ENABLED=0, the release default) still compiles, and
// LoadSigner then refuses pkcs11: references with ErrNotInBuild
// (pkcs11_nocgo.go).

import (
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
)

// pkcs11URI is what csv reads from an RFC 7512 URI:
//
//	pkcs11:token=csv;object=build-key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin
//
// Path attributes: token, manufacturer, model, serial (of the token),
// slot-id, object (the key's CKA_LABEL), id (its CKA_ID, percent-encoded
// bytes) and type (must be "private" if present). At least one of object
// and id is required. Query attributes: module-path (required), pin-value,
// pin-source (a file: URI or a path). Other attributes, and repeated ones,
// are refused rather than ignored: a URI that means something csv does not
// understand must not pick a key.
type pkcs11URI struct {
	token, manufacturer, model, serial string
	slotID                             *uint
	object                             string
	id                                 []byte
	hasID                              bool
	modulePath                         string
	pinValue, pinSource                string
	hasPINValue                        bool
}

const maxPINFile = 4 << 10

// cutPKCS11Scheme returns what follows the pkcs11: scheme of ref and
// whether ref has it, in any letter case: URI schemes are case-insensitive
// (RFC 3986, 3.1), so "PKCS11:" is a PKCS#11 URI too, and one taken for a
// key file path would have its PIN printed with the path.
func cutPKCS11Scheme(ref string) (string, bool) {
	const scheme = "pkcs11:"
	if len(ref) < len(scheme) || !strings.EqualFold(ref[:len(scheme)], scheme) {
		return ref, false
	}
	return ref[len(scheme):], true
}

func parsePKCS11URI(ref string) (*pkcs11URI, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: bad URI: %s", ErrPKCS11, fmt.Sprintf(format, args...))
	}
	rest, ok := cutPKCS11Scheme(ref)
	if !ok {
		return nil, bad("does not start with pkcs11:")
	}
	path, query, _ := strings.Cut(rest, "?")
	u := &pkcs11URI{}
	seen := map[string]bool{}
	attrs := func(s, sep, where string, set func(name, value string) error) error {
		if s == "" {
			return nil
		}
		for i, a := range strings.Split(s, sep) {
			name, raw, ok := strings.Cut(a, "=")
			if !ok || name == "" {
				// Not shown: it may be a mistyped PIN.
				return bad("%s attribute #%d is not name=value", where, i+1)
			}
			if seen[name] {
				return bad("attribute %q repeated", name)
			}
			seen[name] = true
			value, err := url.PathUnescape(raw)
			if err != nil {
				if strings.Contains(strings.ToLower(name), "pin") {
					// The error quotes the bad escape: a piece of the PIN.
					return bad("attribute %q: malformed percent-encoding", name)
				}
				return bad("attribute %q: %v", name, err)
			}
			if err := set(name, value); err != nil {
				return err
			}
		}
		return nil
	}
	err := attrs(path, ";", "path", func(name, value string) error {
		switch name {
		case "token":
			u.token = value
		case "manufacturer":
			u.manufacturer = value
		case "model":
			u.model = value
		case "serial":
			u.serial = value
		case "slot-id":
			n, err := strconv.ParseUint(value, 10, 32)
			if err != nil {
				return bad("slot-id %q is not a number", value)
			}
			id := uint(n)
			u.slotID = &id
		case "object":
			u.object = value
		case "id":
			u.id, u.hasID = []byte(value), true
		case "type":
			if value != "private" {
				return bad("type=%s: csv signs with a private key (type=private)", value)
			}
		default:
			return bad("path attribute %q is not supported", name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = attrs(query, "&", "query", func(name, value string) error {
		switch name {
		case "module-path":
			u.modulePath = value
		case "pin-value":
			u.pinValue, u.hasPINValue = value, true
		case "pin-source":
			u.pinSource = value
		case "module-name":
			return bad("module-name is not supported: give the library with module-path")
		default:
			return bad("query attribute %q is not supported", name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if u.modulePath == "" {
		return nil, bad("module-path is required (the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so)")
	}
	if u.object == "" && !u.hasID {
		return nil, bad("object= or id= is required to pick the key")
	}
	if u.hasPINValue && u.pinSource != "" {
		return nil, bad("pin-value and pin-source are exclusive")
	}
	return u, nil
}

// pin returns the token PIN: pin-value, else the contents of pin-source
// (trailing newline removed), else the environment variable env if set, else
// nil (no login).
func (u *pkcs11URI) pin(env string) ([]byte, error) {
	switch {
	case u.hasPINValue:
		return []byte(u.pinValue), nil
	case u.pinSource != "":
		path := u.pinSource
		if strings.HasPrefix(path, "file:") {
			pu, err := url.Parse(path)
			if err != nil || (pu.Host != "" && pu.Host != "localhost") {
				return nil, fmt.Errorf("%w: pin-source %q is not a local file: URI", ErrPKCS11, path)
			}
			path = pu.Path
			if path == "" {
				path = pu.Opaque
			}
		}
		data, err := readCapped(path, maxPINFile)
		if err != nil {
			return nil, fmt.Errorf("%w: pin-source: %w", ErrPKCS11, err)
		}
		return []byte(strings.TrimRight(string(data), "\r\n")), nil
	}
	if v, ok := os.LookupEnv(env); ok {
		return []byte(v), nil
	}
	return nil, nil
}

// describe names the key in messages (never with the PIN).
func (u *pkcs11URI) describe() string {
	var parts []string
	if u.token != "" {
		parts = append(parts, "token="+u.token)
	}
	if u.serial != "" {
		parts = append(parts, "serial="+u.serial)
	}
	if u.slotID != nil {
		parts = append(parts, fmt.Sprintf("slot-id=%d", *u.slotID))
	}
	if u.object != "" {
		parts = append(parts, "object="+u.object)
	}
	if u.hasID {
		parts = append(parts, "id="+url.PathEscape(string(u.id)))
	}
	return "pkcs11:" + strings.Join(parts, ";")
}

// redacted stands for a secret RedactKeyRef took out.
const redacted = "REDACTED"

// RedactKeyRef returns a key reference fit for messages and logs: in a
// pkcs11: URI (the scheme in any case, anywhere in ref: a reference typed
// "PKCS11:..." or " pkcs11:..." is read as a key file's name, and shown),
// the value of every attribute that may hold a PIN (pin-value, and any
// misspelling of it: every name holding "pin" but pin-source) and every
// attribute that is not name=value (a mistyped PIN) become "REDACTED".
// Attributes are told apart at every ";", "&" and "?", whichever part of
// the URI they are in, so that a PIN after the wrong separator
// ("?module-path=/m.so;pin-value=1234") is not taken for part of another
// attribute's value. Other references are returned as they are (key file
// paths and KMS URIs hold no secret). Print a key reference only through
// it.
func RedactKeyRef(ref string) string {
	out, _ := redactKeyRef(ref)
	return out
}

// redactKeyRef is RedactKeyRef, and the secrets it took out (as written,
// and percent-decoded), for scrubbing messages that quote them.
func redactKeyRef(ref string) (string, []string) {
	i := strings.Index(strings.ToLower(ref), "pkcs11:")
	if i < 0 {
		return ref, nil
	}
	i += len("pkcs11:")
	var b strings.Builder
	b.WriteString(ref[:i])
	var secrets []string
	secret := func(s string) {
		if s == "" {
			return
		}
		secrets = append(secrets, s)
		if u, err := url.PathUnescape(s); err == nil && u != s && u != "" {
			secrets = append(secrets, u)
		}
	}
	for rest := ref[i:]; ; {
		j := strings.IndexAny(rest, ";&?")
		a := rest
		if j >= 0 {
			a = rest[:j]
		}
		name, value, ok := strings.Cut(a, "=")
		n := strings.ToLower(name)
		if u, err := url.PathUnescape(n); err == nil {
			n = u
		}
		switch {
		case a == "":
		case !ok:
			b.WriteString(redacted)
			secret(a)
		case strings.Contains(n, "pin") && n != "pin-source":
			b.WriteString(name + "=" + redacted)
			secret(value)
		default:
			b.WriteString(a)
		}
		if j < 0 {
			break
		}
		b.WriteByte(rest[j])
		rest = rest[j+1:]
	}
	return b.String(), secrets
}

// redactError is an error whose message had the secrets of a key
// reference scrubbed from it (see LoadSigner).
type redactError struct {
	msg string
	err error
}

func (e *redactError) Error() string { return e.msg }
func (e *redactError) Unwrap() error { return e.err }

// scrubKeyRefSecrets returns err with every secret RedactKeyRef takes out
// of ref replaced by "REDACTED" in its message: the errors of loading a
// key quote the names it tried (a key file, a module path, a token), and a
// PIN typed after the wrong separator is part of one of them.
func scrubKeyRefSecrets(err error, ref string) error {
	_, secrets := redactKeyRef(ref)
	if err == nil || len(secrets) == 0 {
		return err
	}
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(secrets))
	for _, s := range secrets {
		pairs = append(pairs, s, redacted)
	}
	msg := strings.NewReplacer(pairs...).Replace(err.Error())
	if msg == err.Error() {
		return err
	}
	return &redactError{msg: msg, err: err}
}
