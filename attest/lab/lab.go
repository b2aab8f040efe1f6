// Package lab fakes a measured boot on a software TPM, so that an operator
// can reach a first attestation on one machine without firmware: it checks
// that the TPM is swtpm and freshly reset, writes the event log of a UEFI
// Secure Boot (package bootlog), extends its measurements into the TPM's
// active PCR banks as firmware would, and checks that the TPM then holds
// what the log replays to. `csv attest lab-log` is its command.
//
// # Security
//
// Everything here is a lie told to a TPM that has no firmware: a software
// TPM proves nothing about any machine. Boot refuses a TPM whose vendor
// strings are not swtpm's (libtpms: "SW" "TPM"), and the command refuses
// anything but a Unix socket, so that a real TPM's PCRs are never
// extended with made-up measurements (its host's attestations, and the
// secrets sealed to those PCRs, would break until it reboots).
package lab

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/codesignval/csv/attest/bootlog"
	"github.com/codesignval/csv/attest/eventlog"
	authpe "github.com/codesignval/csv/signing/authenticode/pe"
)

// Errors of Boot, matched with errors.Is.
var (
	// ErrNotSoftwareTPM: the TPM does not say it is swtpm.
	ErrNotSoftwareTPM = errors.New("lab: not a software TPM (swtpm)")
	// ErrNotReset: a PCR the boot extends is not at its reset value.
	ErrNotReset = errors.New("lab: the TPM's PCRs were extended since it was reset")
	// ErrBank: the TPM has an active PCR bank the lab log cannot write.
	ErrBank = errors.New("lab: unsupported PCR bank")
	// ErrMismatch: after extending, the TPM does not hold what the log
	// replays to.
	ErrMismatch = errors.New("lab: the TPM's PCRs do not match the log")
)

// banks the lab log writes (those a boot application's Authenticode
// digest is computed for).
var supported = []eventlog.HashAlg{eventlog.SHA1, eventlog.SHA256, eventlog.SHA384}

// CheckSoftwareTPM returns ErrNotSoftwareTPM unless the TPM's vendor
// strings are libtpms' ("SW  ", " TPM"): swtpm's.
func CheckSoftwareTPM(t transport.TPM) error {
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(tpm2.TPMPTManufacturer), PropertyCount: 16}.Execute(t)
	if err != nil {
		return fmt.Errorf("lab: reading the TPM's properties: %w", err)
	}
	props, err := rsp.CapabilityData.Data.TPMProperties()
	if err != nil {
		return fmt.Errorf("lab: reading the TPM's properties: %w", err)
	}
	var manufacturer, vendor string
	for _, p := range props.TPMProperty {
		s := string(bytes.TrimRight(binary.BigEndian.AppendUint32(nil, p.Value), "\x00"))
		switch p.Property {
		case tpm2.TPMPTManufacturer:
			manufacturer = strings.TrimSpace(s)
		case tpm2.TPMPTVendorString1, tpm2.TPMPTVendorString2, tpm2.TPMPTVendorString3, tpm2.TPMPTVendorString4:
			vendor += s
		}
	}
	if v := strings.Join(strings.Fields(vendor), " "); v != "SW TPM" {
		return fmt.Errorf("%w: it says it is %q, vendor %q (swtpm says \"SW TPM\")", ErrNotSoftwareTPM, manufacturer, v)
	}
	return nil
}

// ActiveBanks returns the TPM's PCR banks that have PCRs allocated. A bank
// other than SHA1, SHA256 and SHA384 is ErrBank.
func ActiveBanks(t transport.TPM) ([]eventlog.HashAlg, error) {
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapPCRs, PropertyCount: 16}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("lab: reading the TPM's PCR banks: %w", err)
	}
	sels, err := rsp.CapabilityData.Data.AssignedPCR()
	if err != nil {
		return nil, fmt.Errorf("lab: reading the TPM's PCR banks: %w", err)
	}
	var out []eventlog.HashAlg
	for _, s := range sels.PCRSelections {
		if !hasBit(s.PCRSelect) {
			continue
		}
		alg := eventlog.HashAlg(s.Hash)
		ok := false
		for _, a := range supported {
			ok = ok || a == alg
		}
		if !ok {
			return nil, fmt.Errorf("%w: the TPM's %s bank is active; the lab log writes sha1, sha256 and sha384 (make the TPM with swtpm_setup --pcr-banks sha256)", ErrBank, alg)
		}
		out = append(out, alg)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: the TPM has no active PCR bank", ErrBank)
	}
	return out, nil
}

func hasBit(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return true
		}
	}
	return false
}

// ReadPCRs reads PCRs 0 to 23 of the given banks.
func ReadPCRs(t transport.TPM, banks []eventlog.HashAlg) (eventlog.PCRs, error) {
	out := eventlog.PCRs{}
	for _, alg := range banks {
		// A TPM returns at most 8 digests a command.
		for first := 0; first < eventlog.NumPCRs; first += 8 {
			sel := make([]uint, 0, 8)
			for p := first; p < first+8; p++ {
				sel = append(sel, uint(p))
			}
			rsp, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
				{Hash: tpm2.TPMAlgID(alg), PCRSelect: tpm2.PCClientCompatible.PCRs(sel...)}}}}.Execute(t)
			if err != nil {
				return nil, fmt.Errorf("lab: reading %s PCRs %d-%d: %w", alg, first, first+7, err)
			}
			if len(rsp.PCRValues.Digests) != len(sel) {
				return nil, fmt.Errorf("lab: reading %s PCRs %d-%d: the TPM returned %d values", alg, first, first+7, len(rsp.PCRValues.Digests))
			}
			for i, d := range rsp.PCRValues.Digests {
				out.Set(alg, first+i, d.Buffer)
			}
		}
	}
	return out, nil
}

// Boot writes the log of the boot o describes in the TPM's active banks
// (o.Banks is ignored), after checking that the TPM is swtpm and that its
// PCRs hold their reset values; extends every measured event into the TPM;
// and checks that PCRs 0-23 then hold what the log replays to. It returns
// the log. The TPM is changed only after every check passed, but an error
// while extending leaves it half extended: restart swtpm.
func Boot(t transport.TPM, o bootlog.Options) ([]byte, error) {
	if err := CheckSoftwareTPM(t); err != nil {
		return nil, err
	}
	banks, err := ActiveBanks(t)
	if err != nil {
		return nil, err
	}
	o.Banks = banks
	w, err := bootlog.Write(o)
	if err != nil {
		return nil, err
	}
	before, err := ReadPCRs(t, banks)
	if err != nil {
		return nil, err
	}
	reset, err := eventlog.NewWriter(eventlog.FormatCryptoAgile, banks...)
	if err != nil {
		return nil, err
	}
	for _, a := range banks {
		for p := 0; p < eventlog.NumPCRs; p++ {
			if !bytes.Equal(before.Get(a, p), reset.PCRs().Get(a, p)) {
				return nil, fmt.Errorf("%w: %s PCR %d holds %x (a boot is faked once per reset: restart swtpm, then run this again)", ErrNotReset, a, p, before.Get(a, p))
			}
		}
	}
	raw := w.Bytes()
	l, err := eventlog.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("lab: the log written does not parse: %w", err)
	}
	for _, e := range l.Events {
		if !e.Extended() {
			continue
		}
		ds := make([]tpm2.TPMTHA, 0, len(e.Digests))
		for _, d := range e.Digests {
			ds = append(ds, tpm2.TPMTHA{HashAlg: tpm2.TPMIAlgHash(d.Alg), Digest: d.Value})
		}
		if _, err := (tpm2.PCRExtend{
			PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(e.PCR), Auth: tpm2.PasswordAuth(nil)},
			Digests:   tpm2.TPMLDigestValues{Digests: ds},
		}).Execute(t); err != nil {
			return nil, fmt.Errorf("lab: extending PCR %d (event %d): %w", e.PCR, e.Index, err)
		}
	}
	after, err := ReadPCRs(t, banks)
	if err != nil {
		return nil, err
	}
	want := w.PCRs()
	for _, a := range banks {
		for p := 0; p < eventlog.NumPCRs; p++ {
			if !bytes.Equal(after.Get(a, p), want.Get(a, p)) {
				return nil, fmt.Errorf("%w: %s PCR %d holds %x, the log replays to %x", ErrMismatch, a, p, after.Get(a, p), want.Get(a, p))
			}
		}
	}
	return raw, nil
}

// App reads a boot application: a PE image, whose Authenticode digests
// are its measurements, named in the log by path (its base name if empty).
func App(file, path string) (bootlog.App, error) {
	f, err := os.Open(file)
	if err != nil {
		return bootlog.App{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return bootlog.App{}, err
	}
	if !st.Mode().IsRegular() {
		return bootlog.App{}, fmt.Errorf("%s: not a regular file", file)
	}
	im, err := authpe.Parse(f, st.Size())
	if err != nil {
		return bootlog.App{}, fmt.Errorf("%s: not a PE image a boot could load: %w", file, err)
	}
	app := bootlog.App{Path: path}
	for _, d := range []struct {
		h   crypto.Hash
		dst *[]byte
	}{{crypto.SHA256, &app.SHA256}, {crypto.SHA1, &app.SHA1}, {crypto.SHA384, &app.SHA384}} {
		if *d.dst, err = im.Digest(f, d.h); err != nil {
			return bootlog.App{}, fmt.Errorf("%s: %w", file, err)
		}
	}
	return app, nil
}

// NewCertificate makes a self-signed ECDSA P-256 certificate for a lab's
// Secure Boot database (its key is thrown away: nothing is signed with it;
// firmware only lists it). It is valid for ten years from now.
func NewCertificate(commonName string) (*x509.Certificate, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: commonName, Organization: []string{"csv attestation lab (not for production)"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0), BasicConstraintsValid: true, IsCA: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
