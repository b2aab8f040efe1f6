package client

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"sort"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/attest/wire"
)

// KeyType selects a key.
type KeyType string

// Key types. For the EK: RSA is the TCG's RSA-2048 EK (template L-1,
// persisted at 0x81010001, certificate at NV 0x01C00002); ECC the ECC
// P-256 EK (L-2, 0x81010002, 0x01C0000A); ECCP384 the ECC P-384 EK that
// swtpm_setup and some TPMs provision (template H-3, 0x81010016,
// 0x01C00016), used only when persisted. For the AK: RSA-2048 (RSASSA) or
// ECC P-256 (ECDSA), with SHA-256.
const (
	RSA     KeyType = "rsa"
	ECC     KeyType = "ecc"
	ECCP384 KeyType = "ecc384"
)

// ekSlot is where the EK Credential Profile puts an EK and its certificate.
type ekSlot struct {
	typ       KeyType
	persisted tpm2.TPMHandle
	certNV    tpm2.TPMHandle
	template  *tpm2.TPMTPublic // nil: only used when persisted
}

var ekSlots = []ekSlot{
	{RSA, 0x81010001, 0x01C00002, &tpm2.RSAEKTemplate},
	{ECC, 0x81010002, 0x01C0000A, &tpm2.ECCEKTemplate},
	{ECCP384, 0x81010016, 0x01C00016, nil},
}

// policySecretEndorsement is the EK authorization policy of the low-range
// templates: TPM2_PolicySecret(TPM_RH_ENDORSEMENT), with SHA-256.
var policySecretEndorsement = tpm2.RSAEKTemplate.AuthPolicy.Buffer

// Options choose the keys.
type Options struct {
	// EK is the endorsement key to use; empty: the first of RSA, ECC and
	// ECCP384 with a certificate in NV, else RSA.
	EK KeyType
	// AK is the attestation key's type (default ECC).
	AK KeyType
	// AKHandle, if not 0, is a persistent handle (0x81000000-0x81FFFFFF):
	// the AK there is used if there is one, else one is created and
	// persisted there. Otherwise the AK is created for this session and
	// flushed by Close.
	AKHandle tpm2.TPMHandle
}

// key is a loaded object.
type key struct {
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
	pub    *tpm2.TPMTPublic
	raw    []byte // TPMT_PUBLIC as the TPM returned it
	flush  bool
}

func (k *key) auth(s tpm2.Session) tpm2.AuthHandle {
	return tpm2.AuthHandle{Handle: k.handle, Name: k.name, Auth: s}
}

// Attester holds a TPM's EK and an AK.
type Attester struct {
	tpm    transport.TPM
	ekType KeyType
	ek     *key
	ekCert []byte
	ak     *key
	srk    *key
}

// TPMError is a TPM command that failed.
type TPMError struct {
	Op  string
	Err error
}

func (e *TPMError) Error() string { return "client: " + e.Op + ": " + e.Err.Error() }
func (e *TPMError) Unwrap() error { return e.Err }

func tpmErr(op string, err error) error { return &TPMError{Op: op, Err: err} }

// NewAttester loads the EK (and its certificate, if in NV) and creates or
// loads the AK. Close flushes what it created.
func NewAttester(t transport.TPM, o Options) (*Attester, error) {
	a := &Attester{tpm: t}
	if err := a.load(o); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func (a *Attester) load(o Options) error {
	if err := a.loadEK(o.EK); err != nil {
		return err
	}
	switch o.AK {
	case "", ECC, RSA:
	default:
		return fmt.Errorf("client: unknown AK type %q (want rsa or ecc)", o.AK)
	}
	if o.AKHandle != 0 {
		if o.AKHandle>>24 != 0x81 {
			return fmt.Errorf("client: AK handle 0x%08x is not a persistent handle (0x81xxxxxx)", uint32(o.AKHandle))
		}
		if k, err := a.readPublic(o.AKHandle); err == nil {
			if err := checkAK(k.pub); err != nil {
				return fmt.Errorf("client: the object at 0x%08x: %w", uint32(o.AKHandle), err)
			}
			a.ak = k
			return nil
		}
	}
	if err := a.createAK(o.AK); err != nil {
		return err
	}
	if o.AKHandle != 0 {
		_, err := tpm2.EvictControl{
			Auth:             tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
			ObjectHandle:     tpm2.NamedHandle{Handle: a.ak.handle, Name: a.ak.name},
			PersistentHandle: o.AKHandle,
		}.Execute(a.tpm)
		if err != nil {
			return tpmErr(fmt.Sprintf("persisting the AK at 0x%08x", uint32(o.AKHandle)), err)
		}
		a.flush(a.ak)
		a.ak.handle, a.ak.flush = o.AKHandle, false
	}
	return nil
}

// Close flushes the transient objects the Attester created. It does not
// close the TPM.
func (a *Attester) Close() error {
	var errs []error
	for _, k := range []*key{a.ak, a.srk, a.ek} {
		if err := a.flush(k); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (a *Attester) flush(k *key) error {
	if k == nil || !k.flush {
		return nil
	}
	k.flush = false
	if _, err := (tpm2.FlushContext{FlushHandle: k.handle}).Execute(a.tpm); err != nil {
		return tpmErr("flushing a transient object", err)
	}
	return nil
}

func (a *Attester) readPublic(h tpm2.TPMHandle) (*key, error) {
	rp, err := tpm2.ReadPublic{ObjectHandle: h}.Execute(a.tpm)
	if err != nil {
		return nil, err
	}
	pub, err := rp.OutPublic.Contents()
	if err != nil {
		return nil, err
	}
	return &key{handle: h, name: rp.Name, pub: pub, raw: rp.OutPublic.Bytes()}, nil
}

// loadEK finds or creates the EK.
func (a *Attester) loadEK(typ KeyType) error {
	if typ == "" {
		typ = RSA
		for _, s := range ekSlots {
			if _, err := a.nvSize(s.certNV); err == nil {
				typ = s.typ
				break
			}
		}
	}
	var slot *ekSlot
	for i := range ekSlots {
		if ekSlots[i].typ == typ {
			slot = &ekSlots[i]
		}
	}
	if slot == nil {
		return fmt.Errorf("client: unknown EK type %q (want rsa, ecc or ecc384)", typ)
	}
	a.ekType = typ
	if k, err := a.readPublic(slot.persisted); err == nil {
		if err := checkEK(k.pub); err != nil {
			return fmt.Errorf("client: the object at the EK handle 0x%08x: %w", uint32(slot.persisted), err)
		}
		a.ek = k
	} else {
		if slot.template == nil {
			return fmt.Errorf("client: no %s EK is persisted at 0x%08x (this client creates only RSA and ECC P-256 EKs)", typ, uint32(slot.persisted))
		}
		rsp, err := tpm2.CreatePrimary{
			PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
			InPublic:      tpm2.New2B(*slot.template),
		}.Execute(a.tpm)
		if err != nil {
			return tpmErr("creating the "+string(typ)+" EK", err)
		}
		a.ek = &key{handle: rsp.ObjectHandle, name: rsp.Name, raw: rsp.OutPublic.Bytes(), flush: true}
		if a.ek.pub, err = rsp.OutPublic.Contents(); err != nil {
			return tpmErr("reading the EK", err)
		}
	}
	cert, err := a.nvRead(slot.certNV)
	if err != nil {
		return nil // no certificate: the service must know the EK otherwise
	}
	// Some TPMs pad the certificate in NV.
	if c, err := x509.ParseCertificate(trimDER(cert)); err == nil {
		ekKey, err := tpm2.Pub(*a.ek.pub)
		if err != nil {
			return tpmErr("reading the EK", err)
		}
		if eq, ok := c.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(ekKey) {
			return fmt.Errorf("client: the EK certificate at NV 0x%08x certifies another key than the %s EK", uint32(slot.certNV), typ)
		}
		a.ekCert = c.Raw
	}
	return nil
}

// trimDER cuts a DER SEQUENCE's trailing bytes.
func trimDER(b []byte) []byte {
	if len(b) < 4 || b[0] != 0x30 {
		return b
	}
	n, hdr := 0, 2
	switch {
	case b[1] < 0x80:
		n = int(b[1])
	case b[1] == 0x81:
		n, hdr = int(b[2]), 3
	case b[1] == 0x82:
		n, hdr = int(b[2])<<8|int(b[3]), 4
	default:
		return b
	}
	if hdr+n <= len(b) {
		return b[:hdr+n]
	}
	return b
}

func checkEK(p *tpm2.TPMTPublic) error {
	a := p.ObjectAttributes
	if !a.Restricted || !a.Decrypt || a.SignEncrypt || !a.FixedTPM {
		return errors.New("not a restricted decryption key fixed to its TPM")
	}
	return nil
}

func checkAK(p *tpm2.TPMTPublic) error {
	a := p.ObjectAttributes
	if !a.Restricted || !a.SignEncrypt || a.Decrypt || !a.FixedTPM || !a.SensitiveDataOrigin {
		return errors.New("not a restricted signing key fixed to its TPM and created in it")
	}
	return nil
}

// nvSize returns an NV index's size, or an error if it is not defined.
func (a *Attester) nvSize(idx tpm2.TPMHandle) (int, error) {
	rsp, err := tpm2.NVReadPublic{NVIndex: idx}.Execute(a.tpm)
	if err != nil {
		return 0, err
	}
	pub, err := rsp.NVPublic.Contents()
	if err != nil {
		return 0, err
	}
	return int(pub.DataSize), nil
}

// nvRead reads a whole NV index, authorised by the index (AUTHREAD) or else
// by the owner hierarchy (OWNERREAD), both with an empty password.
func (a *Attester) nvRead(idx tpm2.TPMHandle) ([]byte, error) {
	rsp, err := tpm2.NVReadPublic{NVIndex: idx}.Execute(a.tpm)
	if err != nil {
		return nil, err
	}
	pub, err := rsp.NVPublic.Contents()
	if err != nil {
		return nil, err
	}
	chunk := 512
	if cap, err := a.property(tpm2.TPMPTNVBufferMax); err == nil && cap > 0 {
		chunk = int(cap)
	}
	nv := tpm2.NamedHandle{Handle: idx, Name: rsp.NVName}
	for _, auth := range []tpm2.AuthHandle{
		{Handle: idx, Name: rsp.NVName, Auth: tpm2.PasswordAuth(nil)},
		{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
	} {
		var out []byte
		for len(out) < int(pub.DataSize) {
			n := min(chunk, int(pub.DataSize)-len(out))
			r, err := tpm2.NVRead{AuthHandle: auth, NVIndex: nv, Size: uint16(n), Offset: uint16(len(out))}.Execute(a.tpm)
			if err != nil {
				out = nil
				break
			}
			out = append(out, r.Data.Buffer...)
		}
		if out != nil {
			return out, nil
		}
	}
	return nil, fmt.Errorf("client: cannot read NV index 0x%08x", uint32(idx))
}

func (a *Attester) property(p tpm2.TPMPT) (uint32, error) {
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(p), PropertyCount: 1}.Execute(a.tpm)
	if err != nil {
		return 0, err
	}
	props, err := rsp.CapabilityData.Data.TPMProperties()
	if err != nil {
		return 0, err
	}
	for _, t := range props.TPMProperty {
		if t.Property == p {
			return t.Value, nil
		}
	}
	return 0, errors.New("property not reported")
}

// akTemplate returns the AK template: a restricted signing key fixed to
// the TPM, with a fixed SHA-256 scheme.
func akTemplate(typ KeyType) tpm2.TPMTPublic {
	attrs := tpm2.TPMAObject{FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true, NoDA: true, Restricted: true, SignEncrypt: true}
	if typ == RSA {
		return tpm2.TPMTPublic{Type: tpm2.TPMAlgRSA, NameAlg: tpm2.TPMAlgSHA256, ObjectAttributes: attrs,
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
				Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
				Scheme: tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgRSASSA,
					Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgRSASSA, &tpm2.TPMSSigSchemeRSASSA{HashAlg: tpm2.TPMAlgSHA256})},
				KeyBits: 2048}),
			Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{})}
	}
	return tpm2.TPMTPublic{Type: tpm2.TPMAlgECC, NameAlg: tpm2.TPMAlgSHA256, ObjectAttributes: attrs,
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme: tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256})},
			CurveID: tpm2.TPMECCNistP256, KDF: tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull}}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{})}
}

// createAK creates the AK under the storage root key (the persisted SRK at
// 0x81000001 if there is one, else a transient ECC SRK).
func (a *Attester) createAK(typ KeyType) error {
	if k, err := a.readPublic(0x81000001); err == nil && k.pub.ObjectAttributes.Restricted && k.pub.ObjectAttributes.Decrypt {
		a.srk = k
	} else {
		rsp, err := tpm2.CreatePrimary{
			PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
			InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
		}.Execute(a.tpm)
		if err != nil {
			return tpmErr("creating the storage root key", err)
		}
		a.srk = &key{handle: rsp.ObjectHandle, name: rsp.Name, flush: true}
	}
	cr, err := tpm2.Create{ParentHandle: a.srk.auth(tpm2.PasswordAuth(nil)), InPublic: tpm2.New2B(akTemplate(typ))}.Execute(a.tpm)
	if err != nil {
		return tpmErr("creating the AK", err)
	}
	lr, err := tpm2.Load{ParentHandle: a.srk.auth(tpm2.PasswordAuth(nil)), InPrivate: cr.OutPrivate, InPublic: cr.OutPublic}.Execute(a.tpm)
	if err != nil {
		return tpmErr("loading the AK", err)
	}
	a.ak = &key{handle: lr.ObjectHandle, name: lr.Name, raw: cr.OutPublic.Bytes(), flush: true}
	if a.ak.pub, err = cr.OutPublic.Contents(); err != nil {
		return tpmErr("reading the AK", err)
	}
	// The storage root key is not needed once the AK is loaded.
	return a.flush(a.srk)
}

// EKType returns the EK in use.
func (a *Attester) EKType() KeyType { return a.ekType }

// EKPublic returns the EK's TPMT_PUBLIC.
func (a *Attester) EKPublic() []byte { return bytes.Clone(a.ek.raw) }

// EKCertificate returns the EK certificate read from NV (DER), or nil.
func (a *Attester) EKCertificate() []byte { return bytes.Clone(a.ekCert) }

// AKPublic returns the AK's TPMT_PUBLIC.
func (a *Attester) AKPublic() []byte { return bytes.Clone(a.ak.raw) }

// AKName returns the AK's TPM Name.
func (a *Attester) AKName() []byte { return bytes.Clone(a.ak.name.Buffer) }

// AKHandle returns the AK's handle.
func (a *Attester) AKHandle() tpm2.TPMHandle { return a.ak.handle }

// EKKeySHA256 returns the EK's identity as the service names it.
func (a *Attester) EKKeySHA256() ([32]byte, error) {
	k, err := tpm2.Pub(*a.ek.pub)
	if err != nil {
		return [32]byte{}, err
	}
	return wire.EKKeySHA256(k)
}

// maxQuoteAttempts bounds the retries when a PCR changes during a quote.
const maxQuoteAttempts = 3

// Quote quotes each selection with the AK (one quote per bank), with nonce
// as qualifying data, and reads the selected PCRs before and after: it
// retries when they changed in between (the IMA PCR does), so that the
// values returned are the quoted ones.
func (a *Attester) Quote(sels []wire.PCRSelection, nonce []byte) ([]wire.QuoteJSON, eventlog.PCRs, error) {
	type bankSel struct {
		alg  eventlog.HashAlg
		pcrs []uint
	}
	var bs []bankSel
	for _, s := range sels {
		alg, err := eventlog.ParseHashAlg(s.Bank)
		if err != nil {
			return nil, nil, fmt.Errorf("client: the service asks for %w", err)
		}
		b := bankSel{alg: alg}
		for _, p := range s.PCRs {
			if p < 0 || p >= eventlog.NumPCRs {
				return nil, nil, fmt.Errorf("client: the service asks for %s PCR %d", s.Bank, p)
			}
			b.pcrs = append(b.pcrs, uint(p))
		}
		bs = append(bs, b)
	}
	for attempt := 0; attempt < maxQuoteAttempts; attempt++ {
		before := eventlog.PCRs{}
		for _, b := range bs {
			if err := a.readPCRs(b.alg, b.pcrs, before); err != nil {
				return nil, nil, err
			}
		}
		var quotes []wire.QuoteJSON
		for _, b := range bs {
			rsp, err := tpm2.Quote{
				SignHandle:     a.ak.auth(tpm2.PasswordAuth(nil)),
				QualifyingData: tpm2.TPM2BData{Buffer: nonce},
				InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
				PCRSelect: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
					{Hash: tpm2.TPMIAlgHash(b.alg), PCRSelect: tpm2.PCClientCompatible.PCRs(b.pcrs...)}}},
			}.Execute(a.tpm)
			if err != nil {
				return nil, nil, tpmErr(fmt.Sprintf("quoting the %s bank", b.alg), err)
			}
			quotes = append(quotes, wire.QuoteJSON{Attest: rsp.Quoted.Bytes(), Signature: tpm2.Marshal(rsp.Signature)})
		}
		after := eventlog.PCRs{}
		for _, b := range bs {
			if err := a.readPCRs(b.alg, b.pcrs, after); err != nil {
				return nil, nil, err
			}
		}
		if samePCRs(before, after) {
			return quotes, after, nil
		}
	}
	return nil, nil, fmt.Errorf("client: the PCRs changed during each of %d quotes", maxQuoteAttempts)
}

func samePCRs(a, b eventlog.PCRs) bool {
	for alg, bank := range a {
		for i, v := range bank {
			if !bytes.Equal(v, b.Get(alg, i)) {
				return false
			}
		}
	}
	return true
}

// readPCRs reads PCRs of a bank into out (a TPM returns at most 8 per
// TPM2_PCR_Read).
func (a *Attester) readPCRs(alg eventlog.HashAlg, pcrs []uint, out eventlog.PCRs) error {
	want := append([]uint(nil), pcrs...)
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	for len(want) > 0 {
		rsp, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
			{Hash: tpm2.TPMIAlgHash(alg), PCRSelect: tpm2.PCClientCompatible.PCRs(want...)}}}}.Execute(a.tpm)
		if err != nil {
			return tpmErr(fmt.Sprintf("reading %s PCRs", alg), err)
		}
		var got []uint
		for _, s := range rsp.PCRSelectionOut.PCRSelections {
			if s.Hash != tpm2.TPMIAlgHash(alg) {
				continue
			}
			for i, by := range s.PCRSelect {
				for bit := 0; bit < 8; bit++ {
					if by&(1<<bit) != 0 {
						got = append(got, uint(i*8+bit))
					}
				}
			}
		}
		if len(got) == 0 || len(got) != len(rsp.PCRValues.Digests) {
			return fmt.Errorf("client: the TPM returned no %s PCR values (is the bank active?)", alg)
		}
		for i, p := range got {
			if int(p) >= eventlog.NumPCRs || len(rsp.PCRValues.Digests[i].Buffer) != alg.Size() {
				return fmt.Errorf("client: the TPM returned a malformed %s PCR value", alg)
			}
			out.Set(alg, int(p), rsp.PCRValues.Digests[i].Buffer)
		}
		rest := want[:0]
		for _, p := range want {
			if out.Get(alg, int(p)) == nil {
				rest = append(rest, p)
			}
		}
		want = rest
	}
	return nil
}

// ActivateCredential runs TPM2_ActivateCredential with the AK and the EK:
// it returns the secret the service wrapped to them.
func (a *Attester) ActivateCredential(idObject, encSecret []byte) ([]byte, error) {
	var ekAuth tpm2.Session
	switch {
	case a.ek.pub.ObjectAttributes.UserWithAuth:
		ekAuth = tpm2.PasswordAuth(nil)
	case a.ek.pub.NameAlg == tpm2.TPMAlgSHA256 && bytes.Equal(a.ek.pub.AuthPolicy.Buffer, policySecretEndorsement):
		ekAuth = tpm2.Policy(tpm2.TPMAlgSHA256, 16, func(t transport.TPM, h tpm2.TPMISHPolicy, nonceTPM tpm2.TPM2BNonce) error {
			_, err := tpm2.PolicySecret{AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
				PolicySession: h, NonceTPM: nonceTPM}.Execute(t)
			return err
		})
	default:
		return nil, fmt.Errorf("client: the EK's authorization policy %x is not one this client satisfies", a.ek.pub.AuthPolicy.Buffer)
	}
	rsp, err := tpm2.ActivateCredential{
		ActivateHandle: a.ak.auth(tpm2.PasswordAuth(nil)),
		KeyHandle:      a.ek.auth(ekAuth),
		CredentialBlob: tpm2.TPM2BIDObject{Buffer: idObject},
		Secret:         tpm2.TPM2BEncryptedSecret{Buffer: encSecret},
	}.Execute(a.tpm)
	if err != nil {
		return nil, tpmErr("activating the credential", err)
	}
	return rsp.CertInfo.Buffer, nil
}

// Open activates a credential and decrypts its payload.
func (a *Attester) Open(c *wire.Credential) ([]byte, error) {
	secret, err := a.ActivateCredential(c.IDObject, c.EncryptedSecret)
	if err != nil {
		return nil, err
	}
	return wire.Open(c, secret, a.ak.name.Buffer)
}
