package report

import (
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/signing"
)

// SignatureDoc is the JSON form of one signature, shared by the validation
// report and csv inspect.
type SignatureDoc struct {
	Index              int    `json:"index"`
	Nesting            []int  `json:"nesting"`
	Format             string `json:"format"`
	DigestAlgorithm    string `json:"digest_algorithm"`
	Digest             string `json:"digest,omitempty"`
	SignatureAlgorithm string `json:"signature_algorithm,omitempty"`
	// PageHashes is the digest of the page-hash table a verified PE
	// signature carries, checked against every page of the file.
	PageHashes string             `json:"page_hashes,omitempty"`
	Verified   bool               `json:"verified"`
	Problem    string             `json:"problem,omitempty"`
	Signer     *CertificateDoc    `json:"signer,omitempty"`
	Chains     [][]CertificateDoc `json:"chains"`
	Timestamp  *TimestampDoc      `json:"timestamp,omitempty"`
}

// CertificateDoc identifies a certificate.
type CertificateDoc struct {
	Subject string `json:"subject"`
	Issuer  string `json:"issuer"`
	Serial  string `json:"serial"`
	// TBSHash is the hash of the TBSCertificate with the certificate's own
	// signature digest, as WDAC writes a signer's CertRoot value.
	TBSHash          string    `json:"tbs_hash"`
	TBSHashAlgorithm string    `json:"tbs_hash_algorithm"`
	SHA256           string    `json:"sha256"`
	NotBefore        time.Time `json:"not_before"`
	NotAfter         time.Time `json:"not_after"`
	EKUs             []string  `json:"ekus,omitempty"`
	// ParseError is set when Go's x509 refuses the certificate; csv still
	// identifies it by its bytes and checks its signature.
	ParseError string `json:"parse_error,omitempty"`
}

// TimestampDoc is a countersignature.
type TimestampDoc struct {
	Kind     string          `json:"kind"`
	Time     time.Time       `json:"time"`
	Verified bool            `json:"verified"`
	Problem  string          `json:"problem,omitempty"`
	Signer   *CertificateDoc `json:"signer,omitempty"`
}

// CertificateDocOf describes a certificate.
func CertificateDocOf(c *signing.Certificate) CertificateDoc {
	d := CertificateDoc{
		Subject: signing.NameString(c.Subject), Issuer: signing.NameString(c.Issuer),
		TBSHash: c.TBSHashHex(), TBSHashAlgorithm: c.TBSHashAlgorithm.String(),
		SHA256: hex.EncodeToString(c.SHA256[:]), NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), EKUs: c.EKUs,
	}
	if c.SerialNumber != nil {
		d.Serial = c.SerialNumber.Text(16)
	}
	if c.ParseError != nil {
		d.ParseError = c.ParseError.Error()
	}
	return d
}

// SignatureDocs describes signatures.
func SignatureDocs(sigs []*signing.Signature) []SignatureDoc {
	out := make([]SignatureDoc, 0, len(sigs))
	for _, s := range sigs {
		d := SignatureDoc{Index: s.Index, Nesting: s.Path, Format: s.Format, SignatureAlgorithm: s.SignatureAlgorithm,
			Verified: s.Verified(), Chains: [][]CertificateDoc{}}
		if d.Nesting == nil {
			d.Nesting = []int{}
		}
		if s.DigestAlgorithm != 0 {
			d.DigestAlgorithm = s.DigestAlgorithm.String()
		}
		if s.Digest != nil {
			d.Digest = hex.EncodeToString(s.Digest)
		}
		if s.PageHashes != 0 {
			d.PageHashes = s.PageHashes.String()
		}
		if s.Problem != nil {
			d.Problem = s.Problem.Error()
		}
		if c := s.Signer(); c != nil {
			cd := CertificateDocOf(c)
			d.Signer = &cd
		}
		for _, chain := range s.Chains {
			var cds []CertificateDoc
			for _, c := range chain {
				cds = append(cds, CertificateDocOf(c))
			}
			d.Chains = append(d.Chains, cds)
		}
		if ts := s.Timestamp; ts != nil {
			td := &TimestampDoc{Kind: ts.Kind, Time: ts.Time.UTC(), Verified: ts.Verified()}
			if ts.Problem != nil {
				td.Problem = ts.Problem.Error()
			}
			if len(ts.Chains) > 0 && len(ts.Chains[0]) > 0 {
				cd := CertificateDocOf(ts.Chains[0][0])
				td.Signer = &cd
			}
			d.Timestamp = td
		}
		out = append(out, d)
	}
	return out
}

// WriteSignatures writes signatures for people, indented by indent, with
// every string the signature carries escaped (printable).
func WriteSignatures(w io.Writer, indent string, sigs []*signing.Signature) {
	if len(sigs) == 0 {
		return
	}
	for i, s := range SignatureDocs(sigs) {
		where := fmt.Sprintf("signature %d", i)
		if len(s.Nesting) > 0 {
			where += fmt.Sprintf(" (entry %d, nested %v)", s.Index, s.Nesting)
		} else if s.Format == "authenticode" {
			where += fmt.Sprintf(" (entry %d)", s.Index)
		}
		status := "verified"
		if !s.Verified {
			status = "NOT VERIFIED: " + printable(s.Problem)
			if i < len(sigs) {
				status += cipolicy.SignerNotFoundHint(sigs[i].Problem)
			}
		}
		fmt.Fprintf(w, "%s%s: %s, %s %s: %s\n", indent, where, printable(string(s.Format)), printable(s.SignatureAlgorithm), printable(s.DigestAlgorithm), status)
		if s.Signer != nil {
			fmt.Fprintf(w, "%s  signer:  %s\n%s  issuer:  %s\n", indent, printable(s.Signer.Subject), indent, printable(s.Signer.Issuer))
		}
		if s.PageHashes != "" {
			fmt.Fprintf(w, "%s  page hashes: %s table, checked against every page\n", indent, s.PageHashes)
		}
		for j, chain := range s.Chains {
			fmt.Fprintf(w, "%s  chain %d:\n", indent, j)
			for k, c := range chain {
				fmt.Fprintf(w, "%s    %d %s\n%s      TBS %s %s  SHA256 %s\n%s      valid %s to %s\n", indent, k, printable(c.Subject),
					indent, strings.TrimPrefix(c.TBSHashAlgorithm, "SHA-"), c.TBSHash, c.SHA256,
					indent, c.NotBefore.Format(time.DateOnly), c.NotAfter.Format(time.DateOnly))
				if c.ParseError != "" {
					fmt.Fprintf(w, "%s      (Go's x509 refuses it: %s; matched by its bytes)\n", indent, printable(c.ParseError))
				}
			}
		}
		if ts := s.Timestamp; ts != nil {
			// A token that verifies establishes no time until a policy
			// trusts its TSA: say so, not "verified".
			status := "token verified, TSA not judged (it counts only where a policy's timestamp_authorities trust it)"
			if !ts.Verified {
				status = "NOT VERIFIED: " + printable(ts.Problem)
			}
			by := ""
			if ts.Signer != nil {
				by = " by " + printable(ts.Signer.Subject)
			}
			fmt.Fprintf(w, "%s  timestamp (%s): %s%s: %s\n", indent, printable(ts.Kind), ts.Time.Format(time.RFC3339), by, status)
		}
	}
}
