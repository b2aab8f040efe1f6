package cipolicy

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/sigtest"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing"
)

// ipeDocPolicies are the example policies of the upstream IPE
// documentation (Documentation/admin-guide/LSM/ipe.rst), with digests of
// our own.
func ipeDocPolicies() map[string]string {
	d1 := fmt.Sprintf("%x", sha256.Sum256([]byte("image one")))
	d2 := fmt.Sprintf("%x", sha256.Sum256([]byte("file two")))
	return map[string]string{
		"allow all": "policy_name=Allow_All policy_version=0.0.0\nDEFAULT action=ALLOW\n",
		"initramfs": "policy_name=Allow_All_Initramfs policy_version=0.0.0\nDEFAULT action=DENY\n\nop=EXECUTE boot_verified=TRUE action=ALLOW\n",
		"signed dm-verity": "policy_name=Allow_Signed_DMV_And_Initramfs policy_version=0.0.0\nDEFAULT action=DENY\n\n" +
			"op=EXECUTE boot_verified=TRUE action=ALLOW\nop=EXECUTE dmverity_signature=TRUE action=ALLOW\n",
		"no kernel modules": "policy_name=Prohibit_Kernel_Modules policy_version=0.0.0\nDEFAULT action=ALLOW\n\nDEFAULT op=KMODULE action=DENY\n",
		"root hashes": "policy_name=Allow_Specific_DMV_Roothashes policy_version=0.0.0\nDEFAULT action=DENY\n\n" +
			"op=EXECUTE boot_verified=TRUE action=ALLOW\nop=EXECUTE dmverity_roothash=sha256:" + d1 + " action=ALLOW\n",
		"signed fs-verity": "policy_name=Allow_Signed_DMV_And_FSV policy_version=0.0.0\nDEFAULT action=DENY\n\n" +
			"op=EXECUTE dmverity_signature=TRUE action=ALLOW\nop=EXECUTE fsverity_signature=TRUE action=ALLOW\n",
		"fs-verity digest": "policy_name=Allow_FSV_Digest policy_version=1.2.3\nDEFAULT action=DENY\n" +
			"op=EXECUTE fsverity_digest=sha256:" + d2 + " action=ALLOW\n",
		"per-op defaults": "# an IPE policy\npolicy_name=Ex_Policy policy_version=0.0.0   # the header\n" +
			"DEFAULT op=EXECUTE action=DENY\nDEFAULT op=FIRMWARE action=DENY\nDEFAULT op=KMODULE action=DENY\n" +
			"DEFAULT op=KEXEC_IMAGE action=DENY\nDEFAULT op=KEXEC_INITRAMFS action=DENY\nDEFAULT op=POLICY action=DENY\n" +
			"DEFAULT op=X509_CERT action=DENY\nop=KMODULE boot_verified=TRUE action=ALLOW\n",
	}
}

// TestIPEKernelCases runs the cases of the kernel's own parser test
// (security/ipe/policy_tests.c): what the kernel accepts, csv accepts, and
// what it refuses, csv refuses; the one difference is a NUL byte, after
// which the kernel silently drops the rest of the policy and csv refuses.
func TestIPEKernelCases(t *testing.T) {
	tests := []struct {
		name, text string
		ok         bool
		err        error
	}{
		{"basic", "policy_name=allowall policy_version=0.0.0\nDEFAULT action=ALLOW", true, nil},
		{"trailing comment", "policy_name=trailing_comment policy_version=152.0.0 #This is comment\nDEFAULT action=ALLOW", true, nil},
		{"trailing newline", "policy_name=allowallnewline policy_version=0.2.0\nDEFAULT action=ALLOW\n\n", true, nil},
		{"crlf", "policy_name=carriagereturnlinefeed policy_version=0.0.1\nDEFAULT action=ALLOW\n\r\n", true, nil},
		{"whitespace and nested defaults", "policy_name=whitespace policy_version=0.0.0\nDEFAULT\taction=ALLOW\n" +
			"     \t     DEFAULT \t    op=EXECUTE      action=DENY\nop=EXECUTE boot_verified=TRUE action=ALLOW\n" +
			"# this is a\tcomment\t\t\t\t\nDEFAULT \t op=KMODULE\t\t\t  action=DENY\r\nop=KMODULE boot_verified=TRUE action=ALLOW\n", true, nil},
		{"negative version", "policy_name=boot_verified policy_version=-1236.0.0\nDEFAULT\taction=ALLOW\n", false, ErrIPEVersion},
		{"special characters", "policy_name=$@!*&^%%\\:;{}() policy_version=0.0.0\nDEFAULT action=ALLOW", true, nil},
		{"overflow version", "policy_name=test policy_version=999999.0.0\nDEFAULT action=ALLOW", false, ErrIPEVersion},
		{"incomplete version", "policy_name=test policy_version=255.0\nDEFAULT action=ALLOW", false, ErrIPEVersion},
		{"extra version", "policy_name=test policy_version=111.0.0.0\nDEFAULT action=ALLOW", false, ErrIPEVersion},
		{"empty", "", false, ErrIPEHeader},
		{"NUL in header", "policy_name=test\x00policy_version=0.0.0\nDEFAULT action=ALLOW", false, ErrIPEText},
		{"NUL before default", "policy_name=test policy_version=0.0.0\n\x00DEFAULT action=ALLOW", false, ErrIPEText},
		// The kernel accepts this one, reading "DEFAULT action=DENY" only.
		{"NUL truncates", "policy_name=test policy_version=0.0.0\nDEFAULT action=DENY\n\x00op=EXECUTE dmverity_signature=TRUE action=ALLOW\n", false, ErrIPEText},
		{"bad property value", "policy_name=test policy_version=0.0.0\nDEFAULT action=ALLOW\nop=EXECUTE dmverity_signature=abc action=ALLOW", false, ErrIPEValue},
		{"no header", "DEFAULT action=ALLOW", false, ErrIPEHeader},
		{"no default", "policy_name=test policy_version=0.0.0\n", false, ErrIPEDefault},
		{"property before op", "policy_name=test policy_version=0.0.0\nDEFAULT action=ALLOW\ndmverity_signature=TRUE op=EXECUTE action=ALLOW", false, ErrIPEToken},
		{"action first", "policy_name=test policy_version=0.0.0\nDEFAULT action=ALLOW\naction=ALLOW op=EXECUTE dmverity_signature=TRUE", false, ErrIPEToken},
		{"two-part version", "policy_name=test policy_version=0.0\nDEFAULT action=ALLOW\nop=EXECUTE dmverity_signature=TRUE action=ALLOW", false, ErrIPEVersion},
		{"unknown operation", "policy_name=test policy_version=0.0.0\nDEFAULT action=ALLOW\nop=UNKNOWN dmverity_signature=TRUE action=ALLOW", false, ErrIPEToken},
		{"no space after name", "policy_name=asdvpolicy_version=0.0.0\nDEFAULT action=ALLOW\n", false, ErrIPEHeader},
		{"trailing no-break space (the kernel's isspace)", "policy_name=t policy_version=0.0.0\nDEFAULT action=ALLOW\xa0\v\n", true, nil},
		{"expanded ascii", "policy_name=test\xFF\xEF policy_version=0.0.0\nDEFAULT action=ALLOW\nop=EXECUTE dmverity_signature=TRUE action=ALLOW", true, nil},
		{"bad digest", "policy_name=test\xFF\xEF policy_version=0.0.0\nDEFAULT action=ALLOW\nop=EXECUTE dmverity_roothash=GOOD_DOG action=ALLOW", false, ErrIPEValue},
		{"double header", "policy_name=test policy_version=0.0.0\npolicy_name=test policy_version=0.1.0\nDEFAULT action=ALLOW", false, ErrIPEToken},
		{"double default", "policy_name=test policy_version=0.0.0\nDEFAULT action=ALLOW\nDEFAULT action=ALLOW\n", false, ErrIPEDefault},
		{"double op default", "policy_name=test policy_version=0.0.0\nDEFAULT action=ALLOW\nDEFAULT op=EXECUTE action=DENY\nDEFAULT op=EXECUTE action=ALLOW\n", false, ErrIPEDefault},
		{"bad action", "policy_name=test policy_version=0.0.0\nDEFAULT action=ALLOW\nDEFAULT op=EXECUTE action=DEN\n", false, ErrIPEValue},
		{"action without value", "policy_name=test policy_version=0.0.0\nDEFAULT action=ALLOW\nDEFAULT op=EXECUTE action\n", false, ErrIPEToken},
		{"unrecognized statement", "policy_name=test policy_version=0.0.0\nDEFAULT action=ALLOW\nUNKNOWN value=true\n", false, ErrIPEToken},
		{"old-style root hash", "policy_name=test policy_version=0.0.0\nDEFAULT action=ALLOW\nop=EXECUTE dmverity_roothash=1c0d7ee1f8343b7fbe418378e8eb22c061d7dec7 action=DENY\n", false, ErrIPEValue},
		{"old-style fs-verity digest", "policy_name=test policy_version=0.0.0\nDEFAULT action=ALLOW\nop=EXECUTE fsverity_digest=1c0d7ee1f8343b7fbe418378e8eb22c061d7dec7 action=DENY\n", false, ErrIPEValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseIPE([]byte(tt.text), "t.ipe")
			if tt.ok {
				if err != nil {
					t.Fatalf("refused a policy the kernel accepts: %v", err)
				}
				if p.Format != "ipe" || p.IPE == nil {
					t.Fatalf("read as %q, not as an IPE policy", p.Format)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted a policy the kernel refuses")
			}
			if p != nil {
				t.Errorf("a policy beside an error")
			}
			if !errors.Is(err, ErrInvalidPolicy) || !errors.Is(err, tt.err) {
				t.Errorf("err = %v, want %v", err, tt.err)
			}
		})
	}
}

func TestIPEDocPolicies(t *testing.T) {
	for name, text := range ipeDocPolicies() {
		t.Run(name, func(t *testing.T) {
			p, err := Parse([]byte(text), "doc.ipe")
			if err != nil {
				t.Fatal(err)
			}
			if p.IPE == nil || p.Format != "ipe" || p.Name == "" || p.Type != Base {
				t.Fatalf("policy = %+v", p)
			}
		})
	}
}

func TestIPEParseFields(t *testing.T) {
	d := sha256.Sum256([]byte("x"))
	text := fmt.Sprintf("# header follows\n\npolicy_name=host policy_version=1.+2.003\nDEFAULT action=DENY # global\n"+
		"DEFAULT op=KMODULE action=ALLOW\nop=EXECUTE fsverity_digest=sha256:%X fsverity_signature=FALSE action=ALLOW\n"+
		"op=EXECUTE dmverity_roothash=sha512:%x%x action=DENY\r op=FIRMWARE action=DENY\n", d, d, d)
	p, err := Parse([]byte(text), "host.ipe")
	if err != nil {
		t.Fatal(err)
	}
	ip := p.IPE
	if ip.Name != "host" || ip.Version != [3]uint16{1, 2, 3} || p.Version != "1.2.3" {
		t.Errorf("header = %q %v", ip.Name, ip.Version)
	}
	if ip.Default != Deny || ip.DefaultLine != 4 || ip.OpDefaults[IPEKModule] != (IPEDefault{Allow, 5}) {
		t.Errorf("defaults = %v line %d, %v", ip.Default, ip.DefaultLine, ip.OpDefaults)
	}
	if len(ip.Rules) != 3 {
		t.Fatalf("rules = %+v", ip.Rules)
	}
	r := ip.Rules[0]
	if r.Op != IPEExecute || r.Action != Allow || r.Line != 6 || len(r.Props) != 2 ||
		r.Props[0].Hash == nil || r.Props[0].Hash.Algorithm != FSVeritySHA256 || !bytes.Equal(r.Props[0].Hash.Value, d[:]) ||
		r.Props[1].Name != IPEFSVeritySignature || r.Props[1].Bool {
		t.Errorf("rule 1 = %+v", r)
	}
	if !strings.HasPrefix(r.Text, "op=EXECUTE fsverity_digest=sha256:") || strings.Contains(r.Text, "#") {
		t.Errorf("rule 1 text = %q", r.Text)
	}
	if r := ip.Rules[1]; r.Props[0].Hash != nil || r.Props[0].Unjudged == "" || r.Line != 7 {
		t.Errorf("sha512 root hash = %+v, want carried as unjudged", r)
	}
	if r := ip.Rules[2]; r.Op != IPEFirmware || r.Line != 7 || r.Text != "op=FIRMWARE action=DENY" {
		t.Errorf("rule after a carriage return = %+v", r)
	}
}

// TestIPERefusals: every refusal names its line (and the column of the
// token at fault) and wraps its kind.
func TestIPERefusals(t *testing.T) {
	h := "policy_name=p policy_version=0.0.0\nDEFAULT action=DENY\n"
	hx := fmt.Sprintf("%x", sha256.Sum256(nil))
	tests := []struct {
		name, text string
		err        error
		line       int
		token      string
	}{
		{"header order", "policy_version=0.0.0 policy_name=p\nDEFAULT action=DENY\n", ErrIPEHeader, 1, "column 1"},
		{"header missing", "DEFAULT action=DENY\nop=EXECUTE action=ALLOW\n", ErrIPEHeader, 1, "policy_name="},
		{"header extra token", "policy_name=p policy_version=0.0.0 x=1\nDEFAULT action=DENY\n", ErrIPEHeader, 1, "x=1"},
		{"header without version", "policy_name=p\nDEFAULT action=DENY\n", ErrIPEHeader, 1, ""},
		{"empty name", "policy_name= policy_version=0.0.0\nDEFAULT action=DENY\n", ErrIPEHeader, 1, "policy_name="},
		{"version letters", "policy_name=p policy_version=1.a.0\nDEFAULT action=DENY\n", ErrIPEVersion, 1, "\"a\""},
		{"version hex", "policy_name=p policy_version=0x1.0.0\nDEFAULT action=DENY\n", ErrIPEVersion, 1, ""},
		{"version empty part", "policy_name=p policy_version=1..0\nDEFAULT action=DENY\n", ErrIPEVersion, 1, ""},
		{"lower-case op", h + "op=execute action=ALLOW\n", ErrIPEToken, 3, "op=execute"},
		{"unknown property", h + "op=EXECUTE ima_signature=TRUE action=ALLOW\n", ErrIPEToken, 3, "column 12"},
		{"property without value", h + "op=EXECUTE boot_verified action=ALLOW\n", ErrIPEToken, 3, "boot_verified"},
		{"lower-case TRUE", h + "op=EXECUTE boot_verified=true action=ALLOW\n", ErrIPEValue, 3, "boot_verified=true"},
		{"no action", h + "op=EXECUTE boot_verified=TRUE\n", ErrIPEToken, 3, "boot_verified=TRUE"},
		{"no op", h + "action=ALLOW\n", ErrIPEToken, 3, ""},
		{"action twice", h + "op=EXECUTE action=ALLOW action=DENY\n", ErrIPEToken, 3, "action=ALLOW"},
		{"op twice", h + "op=EXECUTE op=KMODULE action=DENY\n", ErrIPEToken, 3, "op=KMODULE"},
		{"DEFAULT alone", h + "DEFAULT\n", ErrIPEToken, 3, ""},
		{"DEFAULT not first", h + "op=EXECUTE DEFAULT action=DENY\n", ErrIPEToken, 3, "DEFAULT"},
		{"DEFAULT with property", h + "DEFAULT op=EXECUTE boot_verified=TRUE action=DENY\n", ErrIPEDefault, 3, "boot_verified=TRUE"},
		{"DEFAULT property without op", h + "DEFAULT boot_verified=TRUE action=DENY\n", ErrIPEToken, 3, ""},
		{"unknown digest algorithm", h + "op=EXECUTE fsverity_digest=md5:" + hx[:32] + " action=ALLOW\n", ErrIPEValue, 3, "md5"},
		{"short digest", h + "op=EXECUTE fsverity_digest=sha256:" + hx[:62] + " action=ALLOW\n", ErrIPEValue, 3, ""},
		{"odd hex", h + "op=EXECUTE fsverity_digest=sha256:" + hx + "0 action=ALLOW\n", ErrIPEValue, 3, ""},
		{"not hex", h + "op=EXECUTE dmverity_roothash=sha256:" + strings.Repeat("zz", 32) + " action=ALLOW\n", ErrIPEValue, 3, ""},
		{"empty digest", h + "op=EXECUTE dmverity_roothash= action=ALLOW\n", ErrIPEValue, 3, ""},
		{"no line continuation", h + "op=EXECUTE \\\nboot_verified=TRUE action=ALLOW\n", ErrIPEToken, 3, "\\\\"},
		{"line over the cap", h + "op=EXECUTE " + strings.Repeat(" ", limits.MaxIPELine) + "action=ALLOW\n", ErrIPEText, 3, ""},
		{"too many properties", h + "op=EXECUTE" + strings.Repeat(" boot_verified=TRUE", limits.MaxIPERuleProperties+1) + " action=ALLOW\n", ErrIPEText, 3, ""},
		{"missing op defaults", "policy_name=p policy_version=0.0.0\nDEFAULT op=EXECUTE action=DENY\n", ErrIPEDefault, 0, "FIRMWARE"},
		{"vertical tab in a token", h + "op=EXECUTE\vboot_verified=TRUE action=ALLOW\n", ErrIPEToken, 3, ""},
		{"UTF-8 byte order mark", "\xef\xbb\xbfpolicy_name=p policy_version=0.0.0\nDEFAULT action=DENY\n", ErrIPEHeader, 1, ""},
		{"UTF-16", "\xff\xfe" + string(bytes.Join(bytes.Split([]byte("policy_name=p policy_version=0.0.0\nDEFAULT action=DENY\n"), nil), []byte{0})) + "\x00", ErrIPEText, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.text), "bad.ipe")
			if err == nil {
				t.Fatalf("accepted: %+v", p.IPE)
			}
			if !errors.Is(err, tt.err) || !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			var le *LoadError
			if !errors.As(err, &le) || len(le.Problems) == 0 {
				t.Fatalf("err = %T", err)
			}
			if le.Problems[0].Line != tt.line {
				t.Errorf("line = %d, want %d (%v)", le.Problems[0].Line, tt.line, err)
			}
			// The message is what a user reads to find the token.
			if tt.token != "" && !strings.Contains(le.Problems[0].Message, tt.token) {
				t.Errorf("message %q does not name %q", le.Problems[0].Message, tt.token)
			}
		})
	}
}

func TestIPELineCap(t *testing.T) {
	text := "policy_name=p policy_version=0.0.0\nDEFAULT action=DENY\n" + strings.Repeat("\n", limits.MaxIPELines)
	_, err := Parse([]byte(text), "long.ipe")
	if !errors.Is(err, ErrIPEText) {
		t.Fatalf("err = %v, want ErrIPEText", err)
	}
}

// ipeSet loads IPE policy text into a set.
func ipeSet(t *testing.T, text string, opts SetOptions) *Set {
	t.Helper()
	p, err := Parse([]byte(text), "host.ipe")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSet(opts, p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ipeBool(b bool) *bool { return &b }

func TestIPEEvaluate(t *testing.T) {
	fa := sha256.Sum256([]byte("file a"))
	fb := sha256.Sum256([]byte("file b"))
	img := sha256.Sum256([]byte("image"))
	h := "policy_name=host policy_version=0.0.0\n"
	elf := func(path string, d [32]byte) Subject {
		return Subject{Path: path, Format: FormatELF, Scenario: ScenarioUser, Digests: Digests{FSVeritySHA256: d[:]}}
	}
	image := Subject{Path: "root.img", Format: FormatImage, Digests: Digests{DMVeritySHA256: img[:]}}
	tests := []struct {
		name    string
		policy  string
		opts    IPEOptions
		sub     Subject
		verdict Verdict
		kind    ReasonKind
		rule    string
	}{
		{"allow before deny, both match: allowed (WDAC would deny)",
			h + "DEFAULT action=DENY\nop=EXECUTE fsverity_digest=sha256:" + fmt.Sprintf("%x", fa) + " action=ALLOW\nop=EXECUTE action=DENY\n",
			IPEOptions{}, elf("bin/a", fa), Allowed, KindAllowedByHash, "line 3"},
		{"deny before allow, both match: denied",
			h + "DEFAULT action=ALLOW\nop=EXECUTE action=DENY\nop=EXECUTE fsverity_digest=sha256:" + fmt.Sprintf("%x", fa) + " action=ALLOW\n",
			IPEOptions{}, elf("bin/a", fa), Blocked, KindDenied, "line 3"},
		{"no rule: op default over global default",
			h + "DEFAULT action=ALLOW\nDEFAULT op=EXECUTE action=DENY\nop=EXECUTE fsverity_digest=sha256:" + fmt.Sprintf("%x", fa) + " action=ALLOW\n",
			IPEOptions{}, elf("bin/b", fb), Blocked, KindUnsigned, "line 3"},
		{"no rule, no op default: global default",
			h + "DEFAULT action=ALLOW\nDEFAULT op=KMODULE action=DENY\n",
			IPEOptions{}, elf("bin/b", fb), Allowed, KindAllowedByDefault, "line 2"},
		{"kernel module judged under KMODULE",
			h + "DEFAULT action=ALLOW\nDEFAULT op=KMODULE action=DENY\n",
			IPEOptions{}, elf("lib/modules/x.ko", fb), Blocked, KindUnsigned, "line 3"},
		{"kernel scenario is KMODULE",
			h + "DEFAULT action=ALLOW\nDEFAULT op=KMODULE action=DENY\n",
			IPEOptions{}, func() Subject { s := elf("x", fb); s.Scenario = ScenarioKernel; return s }(), Blocked, KindUnsigned, "line 3"},
		{"explicit op",
			h + "DEFAULT action=ALLOW\nop=FIRMWARE action=DENY\n",
			IPEOptions{Op: IPEFirmware}, elf("fw.bin", fb), Blocked, KindDenied, "line 3"},
		{"rules of other ops do not apply",
			h + "DEFAULT action=ALLOW\nop=FIRMWARE action=DENY\n",
			IPEOptions{}, elf("bin/b", fb), Allowed, KindAllowedByDefault, "line 2"},
		{"boot_verified true",
			h + "DEFAULT action=DENY\nop=EXECUTE boot_verified=TRUE action=ALLOW\n",
			IPEOptions{BootVerified: ipeBool(true)}, elf("bin/b", fb), Allowed, KindAllowedByRule, "line 3"},
		{"boot_verified false",
			h + "DEFAULT action=DENY\nop=EXECUTE boot_verified=TRUE action=ALLOW\n",
			IPEOptions{BootVerified: ipeBool(false)}, elf("bin/b", fb), Blocked, KindUnsigned, "line 2"},
		{"every property must hold",
			h + "DEFAULT action=DENY\nop=EXECUTE boot_verified=TRUE fsverity_digest=sha256:" + fmt.Sprintf("%x", fa) + " action=ALLOW\n",
			IPEOptions{BootVerified: ipeBool(false)}, elf("bin/a", fa), Blocked, KindUnsigned, "line 2"},
		{"image by root hash",
			h + "DEFAULT action=DENY\nop=EXECUTE dmverity_roothash=sha256:" + fmt.Sprintf("%x", img) + " action=ALLOW\n",
			IPEOptions{}, image, Allowed, KindAllowedByHash, "line 3"},
		{"a loose file is on no dm-verity device",
			h + "DEFAULT action=DENY\nop=EXECUTE dmverity_roothash=sha256:" + fmt.Sprintf("%x", img) + " action=ALLOW\n",
			IPEOptions{}, elf("bin/x", img), Blocked, KindUnsigned, "line 2"},
		{"unjudged digest in a deny rule blocks (fail closed)",
			h + "DEFAULT action=ALLOW\nop=EXECUTE fsverity_digest=sha512:" + strings.Repeat("ab", 64) + " action=DENY\n",
			IPEOptions{}, elf("bin/b", fb), Blocked, KindDenied, "line 3"},
		{"unjudged digest in an allow rule never admits",
			h + "DEFAULT action=DENY\nop=EXECUTE fsverity_digest=sha512:" + strings.Repeat("ab", 64) + " action=ALLOW\n",
			IPEOptions{}, elf("bin/b", fb), Blocked, KindUnsigned, "line 2"},
		{"unjudged digest after a failing property does not match",
			h + "DEFAULT action=ALLOW\nop=EXECUTE fsverity_digest=sha256:" + fmt.Sprintf("%x", fa) + " fsverity_digest=sha512:" + strings.Repeat("ab", 64) + " action=DENY\n",
			IPEOptions{}, elf("bin/b", fb), Allowed, KindAllowedByDefault, "line 2"},
		{"fs-verity deny rule blocks a file whose fs-verity digest csv does not compute (fail closed)",
			h + "DEFAULT action=ALLOW\nop=EXECUTE fsverity_digest=sha256:" + fmt.Sprintf("%x", fa) + " action=DENY\n",
			IPEOptions{}, Subject{Path: "a.exe", Format: FormatPE, Digests: Digests{AuthenticodeSHA256: fa[:]}}, Blocked, KindDenied, "line 3"},
		{"fs-verity deny rule blocks an image, whose files csv does not hash",
			h + "DEFAULT action=ALLOW\nop=EXECUTE fsverity_digest=sha256:" + fmt.Sprintf("%x", fa) + " action=DENY\n",
			IPEOptions{}, image, Blocked, KindDenied, "line 3"},
		{"fs-verity allow rule does not admit a PE file",
			h + "DEFAULT action=DENY\nop=EXECUTE fsverity_digest=sha256:" + fmt.Sprintf("%x", fa) + " action=ALLOW\n",
			IPEOptions{}, Subject{Path: "a.exe", Format: FormatPE, Digests: Digests{AuthenticodeSHA256: fa[:]}}, Blocked, KindUnsigned, "line 2"},
		{"malformed subject is blocked",
			h + "DEFAULT action=ALLOW\n",
			IPEOptions{}, Subject{Path: "x", Format: FormatELF, Problem: errors.New("truncated")}, Blocked, KindMalformed, ""},
		{"missing digest fails closed",
			h + "DEFAULT action=ALLOW\nop=EXECUTE fsverity_digest=sha256:" + fmt.Sprintf("%x", fa) + " action=DENY\n",
			IPEOptions{}, Subject{Path: "bin/a", Format: FormatELF, Digests: Digests{SHA256: fa[:]}}, Blocked, KindMalformed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ipeSet(t, tt.policy, SetOptions{IPE: tt.opts})
			d := s.Evaluate(tt.sub)
			if d.Verdict != tt.verdict || d.Kind != tt.kind || d.Rule != tt.rule || !d.Enforced || d.Policy != "host" {
				t.Fatalf("decision = %+v, want %s %s %q", d, tt.verdict, tt.kind, tt.rule)
			}
			if tt.rule != "" && tt.kind != KindAllowedByDefault && tt.kind != KindUnsigned && !strings.Contains(d.Reason, "op=") {
				t.Errorf("reason %q does not quote the rule", d.Reason)
			}
		})
	}
}

// TestIPEAndWDACInOneSet: an IPE policy beside a YAML one judges in rule
// order while the YAML one still lets deny win; both must allow.
func TestIPEAndWDACInOneSet(t *testing.T) {
	fa := sha256.Sum256([]byte("file a"))
	ipe, err := Parse([]byte(fmt.Sprintf("policy_name=host policy_version=0.0.0\nDEFAULT action=DENY\n"+
		"op=EXECUTE fsverity_digest=sha256:%x action=ALLOW\nop=EXECUTE action=DENY\n", fa)), "host.ipe")
	if err != nil {
		t.Fatal(err)
	}
	sub := Subject{Path: "bin/a", Format: FormatELF, Digests: Digests{FSVeritySHA256: fa[:], SHA256: fa[:]}}
	allowDeny := pol(t, "name: w", fmt.Sprintf("{id: allow, action: allow, sha256: %x}", fa), fmt.Sprintf("{id: deny, action: deny, sha256: %x}", fa))
	s, err := NewSet(SetOptions{}, ipe, allowDeny)
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Evaluate(sub); d.Verdict != Blocked || d.Policy != "w" || d.Rule != "deny" {
		t.Fatalf("decision = %+v, want the YAML policy's deny", d)
	}
	allow := pol(t, "name: w", fmt.Sprintf("{id: allow, action: allow, sha256: %x}", fa))
	if s, err = NewSet(SetOptions{}, ipe, allow); err != nil {
		t.Fatal(err)
	}
	if d := s.Evaluate(sub); d.Verdict != Allowed {
		t.Fatalf("decision = %+v, want allowed by both", d)
	}
	n := s.Needs("bin/a", FormatELF, ScenarioUser)
	if !n.Digests.Has(FSVeritySHA256) || !n.Later.IsZero() {
		t.Errorf("needs = %+v, want the fs-verity digest at once", n)
	}
	if n := s.Needs("x.exe", FormatPE, ScenarioUser); n.Digests.Has(FSVeritySHA256) {
		t.Errorf("PE needs = %+v: csv computes fs-verity digests of ELF files only", n)
	}
	if n := s.Needs("root.img", FormatImage, ScenarioUser); n.Digests.Has(DMVeritySHA256) {
		t.Errorf("image needs %v: no rule compares a root hash", n.Digests)
	}
}

func TestIPEBootVerifiedIsAnInput(t *testing.T) {
	p, err := Parse([]byte("policy_name=p policy_version=0.0.0\nDEFAULT action=DENY\n\nop=EXECUTE boot_verified=TRUE action=ALLOW\n"), "host.ipe")
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewSet(SetOptions{}, p)
	if !errors.Is(err, ErrIPEBootVerified) || !strings.Contains(err.Error(), "(host.ipe:4)") {
		t.Fatalf("err = %v, want ErrIPEBootVerified naming host.ipe:4", err)
	}
	if _, err := NewSet(SetOptions{IPE: IPEOptions{BootVerified: ipeBool(false)}}, p); err != nil {
		t.Fatal(err)
	}
}

func TestIPESignatures(t *testing.T) {
	ca := testca.New(t)
	trusted := cert(t, ca.Root.Cert)
	leafX := ca.Leaf(t, testca.LeafOptions{CommonName: "fs-verity signer"})
	leaf := cert(t, leafX.Cert)
	inter := cert(t, ca.Intermediate.Cert)
	rogue := cert(t, ca.Leaf(t, testca.LeafOptions{CommonName: "rogue", SelfSigned: true}).Cert)
	sig := func(format string, verified bool, chain ...*signing.Certificate) *signing.Signature {
		s := &signing.Signature{Format: format, SignatureAlgorithm: "RSA", Chains: [][]*signing.Certificate{chain}}
		if verified {
			sigtest.Verified(t, s)
		}
		return s
	}
	fa := sha256.Sum256([]byte("a"))
	policy := "policy_name=p policy_version=0.0.0\nDEFAULT action=DENY\nop=EXECUTE fsverity_signature=TRUE action=ALLOW\n" +
		"op=EXECUTE dmverity_signature=TRUE action=ALLOW\n"
	tests := []struct {
		name    string
		sigs    []*signing.Signature
		verdict Verdict
		kind    ReasonKind
		sigIdx  int
	}{
		{"fs-verity signature to a trusted root", []*signing.Signature{sig("fsverity", true, leaf, inter, trusted)}, Allowed, KindAllowedBySigner, 0},
		{"second signature counts", []*signing.Signature{sig("ima", true, leaf, inter, trusted), sig("fsverity", true, leaf, inter, trusted)}, Allowed, KindAllowedBySigner, 1},
		{"dm-verity signature", []*signing.Signature{sig("dmverity", true, leaf, inter, trusted)}, Allowed, KindAllowedBySigner, 0},
		{"not verified", []*signing.Signature{sig("fsverity", false, leaf, inter, trusted)}, Blocked, KindNotAllowed, -1},
		{"untrusted signer", []*signing.Signature{sig("fsverity", true, rogue)}, Blocked, KindNotAllowed, -1},
		{"other format", []*signing.Signature{sig("ima", true, leaf, inter, trusted)}, Blocked, KindNotAllowed, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ipeSet(t, policy, SetOptions{TrustedRoots: []*signing.Certificate{trusted}})
			d := s.Evaluate(Subject{Path: "bin/a", Format: FormatELF, Signed: true, Signatures: tt.sigs, Digests: Digests{FSVeritySHA256: fa[:]}})
			if d.Verdict != tt.verdict || d.Kind != tt.kind || d.Signature != tt.sigIdx {
				t.Fatalf("decision = %+v", d)
			}
		})
	}
	// FALSE matches a file without a trusted signature, so a DENY of it
	// blocks unsigned files first.
	s := ipeSet(t, "policy_name=p policy_version=0.0.0\nDEFAULT action=ALLOW\nop=EXECUTE fsverity_signature=FALSE action=DENY\n", SetOptions{TrustedRoots: []*signing.Certificate{trusted}})
	if d := s.Evaluate(Subject{Path: "x", Format: FormatELF, Digests: Digests{FSVeritySHA256: fa[:]}}); d.Verdict != Blocked || d.Rule != "line 3" {
		t.Errorf("unsigned: %+v", d)
	}
	if d := s.Evaluate(Subject{Path: "x", Format: FormatELF, Signed: true, Signatures: []*signing.Signature{sig("fsverity", true, leaf, inter, trusted)}, Digests: Digests{FSVeritySHA256: fa[:]}}); d.Verdict != Allowed {
		t.Errorf("signed: %+v", d)
	}
	// Signatures the caller did not verify: fail closed.
	if d := s.Evaluate(Subject{Path: "x", Format: FormatELF, Signed: true, Digests: Digests{FSVeritySHA256: fa[:]}}); d.Verdict != Blocked || d.Kind != KindMalformed {
		t.Errorf("signatures not established: %+v", d)
	}
}

// TestIPEIndexKeepsOrder: the digest index must not change which rule
// decides: a general rule before an indexed one wins, and one after loses.
func TestIPEIndexKeepsOrder(t *testing.T) {
	fa := sha256.Sum256([]byte("a"))
	var b strings.Builder
	b.WriteString("policy_name=p policy_version=0.0.0\nDEFAULT action=DENY\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "op=EXECUTE fsverity_digest=sha256:%x action=ALLOW\n", sha256.Sum256([]byte{byte(i), byte(i >> 8)}))
	}
	fmt.Fprintf(&b, "op=EXECUTE boot_verified=FALSE action=DENY\nop=EXECUTE fsverity_digest=sha256:%x action=ALLOW\n", fa)
	s := ipeSet(t, b.String(), SetOptions{IPE: IPEOptions{BootVerified: ipeBool(false)}})
	d := s.Evaluate(Subject{Path: "a", Format: FormatELF, Digests: Digests{FSVeritySHA256: fa[:]}})
	if d.Verdict != Blocked || d.Rule != "line 1003" {
		t.Fatalf("decision = %+v, want the DENY at line 1003 before the ALLOW at 1004", d)
	}
	first := sha256.Sum256([]byte{0, 0})
	d = s.Evaluate(Subject{Path: "a", Format: FormatELF, Digests: Digests{FSVeritySHA256: first[:]}})
	if d.Verdict != Allowed || d.Rule != "line 3" {
		t.Fatalf("decision = %+v, want the ALLOW at line 3", d)
	}
}

func TestIPERoundTrip(t *testing.T) {
	for name, text := range ipeDocPolicies() {
		t.Run(name, func(t *testing.T) {
			p, err := Parse([]byte(text), "a.ipe")
			if err != nil {
				t.Fatal(err)
			}
			out, err := MarshalIPE(p)
			if err != nil {
				t.Fatal(err)
			}
			q, err := Parse(out, "b.ipe")
			if err != nil {
				t.Fatalf("csv cannot read what it wrote: %v\n%s", err, out)
			}
			if !sameIPE(p.IPE, q.IPE) {
				t.Fatalf("round trip changed the policy:\n%s", out)
			}
		})
	}
}

// sameIPE compares policies but for lines and texts (comments and blank
// lines are not kept, and the defaults are written first).
func sameIPE(a, b *IPEPolicy) bool {
	strip := func(p *IPEPolicy) IPEPolicy {
		c := *p
		c.DefaultLine = 0
		c.OpDefaults = map[IPEOp]IPEDefault{}
		for op, d := range p.OpDefaults {
			c.OpDefaults[op] = IPEDefault{Action: d.Action}
		}
		c.Rules = nil
		for _, r := range p.Rules {
			r.Line, r.Text, r.Comment = 0, "", ""
			c.Rules = append(c.Rules, r)
		}
		return c
	}
	return reflect.DeepEqual(strip(a), strip(b))
}

// TestIPEWriteFromHashRules: a policy of fs-verity and dm-verity hash
// rules (csv policy new --format ipe) is written as IPE, read back, and
// allows exactly its files.
func TestIPEWriteFromHashRules(t *testing.T) {
	fa := sha256.Sum256([]byte("a"))
	fb := sha256.Sum256([]byte("b"))
	img := sha256.Sum256([]byte("img"))
	p := &Policy{Name: "build", Version: "1.2.3", Type: Base, Mode: Enforce, Rules: []Rule{
		{ID: "a", Action: Allow, Hash: &HashMatch{FSVeritySHA256, fa[:]}, Comment: "bin/a\nbin/evil\rop=EXECUTE action=ALLOW"},
		{ID: "img", Action: Allow, Hash: &HashMatch{DMVeritySHA256, img[:]}},
	}}
	out, err := MarshalIPE(p)
	if err != nil {
		t.Fatal(err)
	}
	q, err := Parse(out, "build.ipe")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if q.Name != "build" || q.Version != "1.2.3" || q.IPE.Default != Deny || len(q.IPE.Rules) != 2 {
		t.Fatalf("read back %+v", q.IPE)
	}
	s, err := NewSet(SetOptions{}, q)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		sub  Subject
		want Verdict
	}{
		{Subject{Path: "a", Format: FormatELF, Digests: Digests{FSVeritySHA256: fa[:]}}, Allowed},
		{Subject{Path: "b", Format: FormatELF, Digests: Digests{FSVeritySHA256: fb[:]}}, Blocked},
		// csv computes no fs-verity digest of a PE file: not admitted.
		{Subject{Path: "a.exe", Format: FormatPE, Digests: Digests{SHA256: fa[:]}}, Blocked},
		{Subject{Path: "r.img", Format: FormatImage, Digests: Digests{DMVeritySHA256: img[:]}}, Allowed},
		{Subject{Path: "s.img", Format: FormatImage, Digests: Digests{DMVeritySHA256: fb[:]}}, Blocked},
	} {
		if d := s.Evaluate(c.sub); d.Verdict != c.want {
			t.Errorf("%s: %+v, want %s", c.sub.Path, d, c.want)
		}
	}
	for _, bad := range []*Policy{
		{Name: "x", Version: "1.0", Rules: nil},
		{Name: "has space", Version: "1.0.0"},
		{Name: "x", Version: "1.0.0", Rules: []Rule{{ID: "r", Action: Allow, Hash: &HashMatch{SHA256, fa[:]}}}},
		{Name: "x", Version: "1.0.0", Rules: []Rule{{ID: "r", Action: Deny, Hash: &HashMatch{FSVeritySHA256, fa[:]}}}},
		{Name: "x", Version: "1.0.0", Rules: []Rule{{ID: "r", Action: Allow, Hash: &HashMatch{FSVeritySHA256, fa[:]}, Paths: []string{"bin/*"}}}},
	} {
		if _, err := MarshalIPE(bad); !errors.Is(err, ErrInvalidPolicy) {
			t.Errorf("MarshalIPE(%+v) err = %v, want ErrInvalidPolicy", bad, err)
		}
	}
}

func FuzzParseIPE(f *testing.F) {
	for _, text := range ipeDocPolicies() {
		f.Add([]byte(text))
		f.Add([]byte(text[:len(text)/2]))
		f.Add([]byte(strings.Replace(text, "=", "", 2)))
	}
	f.Add([]byte("policy_name=t policy_version=0.0.0\nDEFAULT action=ALLOW\nop=EXECUTE fsverity_digest=sha512:" + strings.Repeat("00", 64) + " action=DENY\r\n"))
	f.Add([]byte("policy_name=t policy_version=+1.0.65535 # c\n DEFAULT op=KMODULE action=DENY\nDEFAULT action=ALLOW\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseIPE(data, "f.ipe")
		if err != nil {
			if p != nil {
				t.Fatal("policy beside an error")
			}
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("error %v is not ErrInvalidPolicy", err)
			}
			return
		}
		out, err := MarshalIPE(p)
		if err != nil {
			// Only a name MarshalIPE refuses (the parser took it).
			return
		}
		q, err := ParseIPE(out, "g.ipe")
		if err != nil {
			t.Fatalf("cannot read what was written: %v\n%q", err, out)
		}
		if !sameIPE(p.IPE, q.IPE) {
			t.Fatalf("round trip changed the policy:\n%q\n%q", data, out)
		}
		set, err := NewSet(SetOptions{IPE: IPEOptions{BootVerified: ipeBool(true)}}, p)
		if err != nil {
			t.Fatal(err)
		}
		d := sha256.Sum256(data)
		for _, sub := range []Subject{
			{Path: "bin/x", Format: FormatELF, Digests: Digests{FSVeritySHA256: d[:]}},
			{Path: "m.ko", Format: FormatELF, Digests: Digests{FSVeritySHA256: d[:]}},
			{Path: "a.exe", Format: FormatPE, Digests: Digests{AuthenticodeSHA256: d[:]}},
			{Path: "r.img", Format: FormatImage, Digests: Digests{DMVeritySHA256: d[:]}},
		} {
			sub.Digests.Set(SHA256, d[:])
			if dec := set.Evaluate(sub); dec.Verdict != Allowed && dec.Verdict != Blocked {
				t.Fatalf("verdict %q", dec.Verdict)
			}
		}
	})
}

func TestIPELint(t *testing.T) {
	fa := fmt.Sprintf("%x", sha256.Sum256([]byte("a")))
	p, err := Parse([]byte("policy_name=p policy_version=0.0.0\nDEFAULT action=DENY\n"+
		"op=EXECUTE fsverity_digest=sha256:"+fa+" action=ALLOW\n"+
		"op=EXECUTE fsverity_digest=sha256:"+fa+" action=DENY\n"+
		"op=EXECUTE fsverity_digest=sha256:"+fa+" action=ALLOW\n"+
		"op=KMODULE action=DENY\nop=KMODULE boot_verified=TRUE action=ALLOW\n"+
		"op=EXECUTE dmverity_roothash=sha512:"+strings.Repeat("00", 64)+" action=DENY\n"), "p.ipe")
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]string{}
	for _, f := range Lint(p) {
		if f.Severity != SeverityWarning || f.Source != "p.ipe" {
			t.Errorf("finding %+v", f)
		}
		got[f.Line] = f.Message
	}
	for line, want := range map[int]string{4: "the rule at line 3 has the same conditions", 5: "the rule at line 3 has the same conditions", 7: "the rule at line 6 matches every KMODULE", 8: "blocks every file it reaches"} {
		if !strings.Contains(got[line], want) {
			t.Errorf("line %d: %q, want %q", line, got[line], want)
		}
	}
	if len(got) != 4 {
		t.Errorf("findings %v, want 4", got)
	}
}

func TestIPEDiff(t *testing.T) {
	fa := fmt.Sprintf("%x", sha256.Sum256([]byte("a")))
	parse := func(body string) *Policy {
		t.Helper()
		p, err := Parse([]byte("policy_name=p policy_version=0.0.0\n"+body), "p.ipe")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	allow := "op=EXECUTE fsverity_digest=sha256:" + fa + " action=ALLOW\n"
	deny := "op=EXECUTE boot_verified=FALSE action=DENY\n"
	base := parse("DEFAULT action=DENY\n" + deny + allow)
	tests := []struct {
		name    string
		new     *Policy
		empty   bool
		loosens bool
	}{
		{"same", parse("# the same\nDEFAULT action=DENY\n\n" + deny + allow), true, false},
		{"reordered", parse("DEFAULT action=DENY\n" + allow + deny), false, true},
		{"default allows", parse("DEFAULT action=DENY\nDEFAULT op=FIRMWARE action=ALLOW\n" + deny + allow), false, true},
		{"deny removed", parse("DEFAULT action=DENY\n" + allow), false, true},
		{"allow removed", parse("DEFAULT action=DENY\n" + deny), false, false},
		{"deny added", parse("DEFAULT action=DENY\nop=FIRMWARE action=DENY\n" + deny + allow), false, false},
		{"to YAML", pol(t, "name: p"), false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Diff(base, tt.new)
			if d.Empty() != tt.empty || d.Loosens() != tt.loosens {
				t.Fatalf("diff = %+v, want empty %v loosens %v", d, tt.empty, tt.loosens)
			}
		})
	}
}

// BenchmarkIPE parses a policy of 100,000 fs-verity digest rules (what
// csv policy new --format ipe writes for a build of that many files) and
// judges files with it: the digest index keeps a file's judgement from
// scanning the rules.
func BenchmarkIPE(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString("policy_name=big policy_version=1.0.0\nDEFAULT action=DENY\nop=EXECUTE boot_verified=FALSE fsverity_signature=TRUE action=DENY\n")
	const n = 100000
	for i := range n {
		fmt.Fprintf(&buf, "op=EXECUTE fsverity_digest=sha256:%x action=ALLOW\n", sha256.Sum256([]byte(fmt.Sprint(i))))
	}
	data := buf.Bytes()
	b.Run("parse", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := ParseIPE(data, "big.ipe"); err != nil {
				b.Fatal(err)
			}
		}
	})
	p, err := ParseIPE(data, "big.ipe")
	if err != nil {
		b.Fatal(err)
	}
	s, err := NewSet(SetOptions{IPE: IPEOptions{BootVerified: ipeBool(true)}}, p)
	if err != nil {
		b.Fatal(err)
	}
	last := sha256.Sum256([]byte(fmt.Sprint(n - 1)))
	sub := Subject{Path: "bin/x", Format: FormatELF, Digests: Digests{FSVeritySHA256: last[:]}}
	b.Run("evaluate", func(b *testing.B) {
		for b.Loop() {
			if d := s.Evaluate(sub); d.Verdict != Allowed {
				b.Fatal(d)
			}
		}
	})
}

func TestIPENoSupplemental(t *testing.T) {
	p, err := Parse([]byte("policy_name=host policy_version=0.0.0\nDEFAULT action=DENY\n"), "host.ipe")
	if err != nil {
		t.Fatal(err)
	}
	sup := pol(t, "name: sup\ntype: supplemental\nbase: host", fmt.Sprintf("{id: a, action: allow, sha256: %x}", sha256.Sum256(nil)))
	if _, err := NewSet(SetOptions{}, p, sup); !errors.Is(err, ErrPolicySet) {
		t.Fatalf("err = %v, want ErrPolicySet: IPE has no supplemental policies", err)
	}
}
