package service

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/codesignval/csv/attest"
)

// decision is what the decision log records of one submission.
type decision struct {
	remote  string
	status  int
	outcome string // trusted, not_trusted, bad_request, busy, timeout, canceled, error
	reason  string
	nonceID string // once its MAC verified
	// nonceIDClaimed is the id of the nonce submitted, before its MAC is
	// checked: logged only when it did not verify.
	nonceIDClaimed string
	// retryAfter, if not zero, is the Retry-After of a busy answer.
	retryAfter time.Duration
	akName     string
	ekKey      string
	ekCert     string
	policy     string
	failed     []attest.Check
	credential string
}

func (s *Server) logDecision(ctx context.Context, d *decision, took time.Duration) {
	level := slog.LevelWarn
	switch d.outcome {
	case "trusted":
		level = slog.LevelInfo
	case "error":
		level = slog.LevelError
	}
	attrs := []slog.Attr{
		slog.String("decision", d.outcome),
		slog.Int("status", d.status),
		slog.String("nonce_id", d.nonceID),
		slog.String("ak_name", d.akName),
		slog.String("ek_key_sha256", d.ekKey),
		slog.String("remote_addr", d.remote),
		slog.Float64("duration_ms", float64(took.Microseconds())/1000),
	}
	if d.nonceID == "" && d.nonceIDClaimed != "" {
		attrs = append(attrs, slog.String("nonce_id_claimed", d.nonceIDClaimed))
	}
	if d.ekCert != "" {
		attrs = append(attrs, slog.String("ek_certificate", d.ekCert))
	}
	if d.policy != "" {
		attrs = append(attrs, slog.String("policy", d.policy))
	}
	if d.reason != "" {
		attrs = append(attrs, slog.String("reason", d.reason))
	}
	if len(d.failed) > 0 {
		f := make([]any, len(d.failed))
		for i, c := range d.failed {
			f[i] = map[string]string{"name": c.Name, "detail": c.Detail}
		}
		attrs = append(attrs, slog.Any("failed_checks", f))
	}
	if d.credential != "" {
		attrs = append(attrs, slog.String("credential_id", d.credential))
	}
	s.log.LogAttrs(ctx, level, "attestation decision", attrs...)
}

// notTrusted is the response to a request judged not trusted: checks holds
// every check made, the last failed.
func notTrusted(nonceID string, res *attest.Result) *AttestResponse {
	return &AttestResponse{MediaType: ResponseMediaType, NonceID: nonceID, Verdict: attest.VerdictNotTrusted, Result: res}
}

// newResult starts a result from the service's checks.
func newResult(p *Policy, checks []attest.Check) *attest.Result {
	r := &attest.Result{MediaType: attest.ResultMediaType, Checks: checks, Workarounds: []attest.WorkaroundUsed{}}
	ref := attest.PolicyRef{Name: p.Attestation.Name, Source: p.Attestation.Source, SHA256: hex.EncodeToString(p.Attestation.SHA256[:])}
	r.Policy = &ref
	return finish(r)
}

// finish sets the verdict from the checks.
func finish(r *attest.Result) *attest.Result {
	r.Trusted = len(r.Checks) > 0
	for _, c := range r.Checks {
		if !c.Passed {
			r.Trusted = false
		}
	}
	r.Verdict = attest.VerdictNotTrusted
	if r.Trusted {
		r.Verdict = attest.VerdictTrusted
	}
	return r
}

// judge decides one submission. It returns the response and its status.
// It stops when ctx is done (the client went away, or the verification's
// time is up): 503, no credential.
func (s *Server) judge(ctx context.Context, req *AttestRequest, d *decision) (*AttestResponse, int) {
	pol := s.policy.Load()
	d.policy = pol.Attestation.Name + " sha256:" + hex.EncodeToString(pol.Attestation.SHA256[:])
	now := s.cfg.Now()
	bad := func(err error) (*AttestResponse, int) {
		d.outcome, d.reason = "bad_request", err.Error()
		return &AttestResponse{MediaType: ResponseMediaType, NonceID: d.nonceID, Verdict: attest.VerdictNotTrusted, Error: err.Error()}, http.StatusBadRequest
	}
	refuseResult := func(res *attest.Result) (*AttestResponse, int) {
		finish(res)
		d.outcome = "not_trusted"
		for _, c := range res.Checks {
			if !c.Passed {
				d.failed = append(d.failed, c)
			}
		}
		return notTrusted(d.nonceID, res), http.StatusForbidden
	}
	refuse := func(checks []attest.Check) (*AttestResponse, int) { return refuseResult(newResult(pol, checks)) }
	stopped := func(err error) (*AttestResponse, int) {
		msg := fmt.Sprintf("the verification did not finish within the service's limit of %s: the evidence is too large to judge, or the service is overloaded",
			s.cfg.VerificationTimeout)
		d.outcome, d.reason = "timeout", err.Error()
		if errors.Is(err, context.Canceled) {
			msg = "the request was canceled"
			d.outcome, d.reason = "canceled", "the client went away: "+err.Error()
		}
		return &AttestResponse{MediaType: ResponseMediaType, NonceID: d.nonceID, Verdict: attest.VerdictNotTrusted, Error: msg},
			http.StatusServiceUnavailable
	}

	// The request's form.
	id, err := parseIdentity(req, s.cfg.AllowSHA1Unsafe, s.eks)
	if err != nil {
		return bad(err)
	}
	d.akName, d.ekKey = hex.EncodeToString(id.akName), hex.EncodeToString(id.ekKeySum[:])
	if id.ekCert != nil {
		d.ekCert = fmt.Sprintf("serial %s issuer %q", id.ekCert.SerialNumber, id.ekCert.Issuer.String())
	}
	switch {
	case req.Nonce == "":
		return bad(badRequest("nonce is required"))
	case len(req.EventLog) == 0:
		return bad(badRequest("event_log is required"))
	case len(req.Quotes) == 0 || len(req.Quotes) > maxQuotes:
		return bad(badRequest("quotes: %d given (1 to %d)", len(req.Quotes), maxQuotes))
	}
	ev := &attest.Evidence{EventLog: req.EventLog}
	for i, q := range req.Quotes {
		if len(q.Attest) == 0 || len(q.Signature) == 0 || len(q.Attest) > maxQuoteBytes || len(q.Signature) > maxQuoteBytes {
			return bad(badRequest("quotes[%d]: attest and signature are required, each at most %d bytes", i, maxQuoteBytes))
		}
		ev.Quotes = append(ev.Quotes, attest.Quote{Attest: q.Attest, Signature: q.Signature})
	}
	if ev.PCRs, err = pcrsFromJSON(req.PCRs); err != nil {
		return bad(badRequest("%v", err))
	}

	// The service's checks: the nonce's MAC and age, the EK, and only then
	// the nonce marked used, so that submissions with an untrusted EK
	// never reach the used-nonce cache; then the AK certificate.
	var checks []attest.Check
	raw, err := decodeNonce(req.Nonce)
	if err == nil {
		d.nonceIDClaimed = nonceID(raw)
		err = s.nonces.verify(raw, binding(id.akName, id.ekKeySum), now)
	}
	if err == nil || errors.Is(err, ErrNonceExpired) { // its MAC verified: this service minted it
		d.nonceID = d.nonceIDClaimed
	}
	if err != nil {
		return refuse([]attest.Check{{Name: "nonce", Detail: strings.TrimPrefix(err.Error(), "service: ")}})
	}
	nonceCheck := attest.Check{Name: "nonce", Passed: true, Detail: fmt.Sprintf("minted for this AK and EK within the last %s", s.cfg.NonceTTL)}
	trust := s.trust.Load() // one for the whole request
	why, err := trust.ek.check(id, now)
	if err != nil {
		return refuse([]attest.Check{nonceCheck, {Name: "ek", Detail: err.Error()}})
	}
	ekCheck := attest.Check{Name: "ek", Passed: true, Detail: why}
	if err := s.nonces.use(ctx, raw, id.ekKeySum, now); err != nil {
		switch {
		case errors.Is(err, ErrReplayStore):
			d.outcome, d.reason, d.retryAfter = "error", err.Error(), time.Second
			return &AttestResponse{MediaType: ResponseMediaType, NonceID: d.nonceID, Verdict: attest.VerdictNotTrusted,
				Error: "the service cannot check that the nonce was not used before (its replay store is unavailable): retry later"}, http.StatusServiceUnavailable
		case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
			return stopped(err)
		}
		var ne *NonceError
		errors.As(err, &ne)
		status := 0
		switch {
		case errors.Is(err, ErrEKQuota):
			status = http.StatusTooManyRequests
		case errors.Is(err, ErrReplayCacheFull):
			status = http.StatusServiceUnavailable
		}
		if status != 0 {
			d.outcome, d.reason = "busy", err.Error()
			if ne != nil {
				d.retryAfter = ne.retryAfter
			}
			return &AttestResponse{MediaType: ResponseMediaType, NonceID: d.nonceID, Verdict: attest.VerdictNotTrusted,
				Error: "busy: " + err.Error() + "; retry later"}, status
		}
		return refuse([]attest.Check{ekCheck, {Name: "nonce", Detail: strings.TrimPrefix(err.Error(), "service: ")}})
	}
	if s.nonces.store != nil {
		nonceCheck.Detail += "; first use on any replica"
	} else {
		nonceCheck.Detail += "; first use on this replica"
	}
	checks = append(checks, nonceCheck, ekCheck)
	vopts := attest.VerifyOptions{AK: id.ak, Nonce: raw, Roots: trust.akRoots, Intermediates: trust.akIntermediates,
		Now: s.cfg.Now, AllowSHA1Unsafe: s.cfg.AllowSHA1Unsafe}
	if id.akCert != nil {
		if err := checkAKCertificate(id); err != nil {
			return refuse(append(checks, attest.Check{Name: "ak-certificate", Detail: err.Error()}))
		}
		if vopts.AK, err = attest.ParseAK(req.AKCertificate); err != nil {
			return refuse(append(checks, attest.Check{Name: "ak-certificate", Detail: err.Error()}))
		}
		checks = append(checks, attest.Check{Name: "ak-certificate", Passed: true, Detail: "the AK certificate certifies ak_public"})
	}

	// The evidence and the policy.
	v, err := attest.Verify(ctx, ev, vopts)
	var ve *attest.VerificationError
	switch {
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return stopped(err)
	case errors.As(err, &ve):
		res := attest.NotVerifiedResult(ve, pol.Attestation)
		res.Checks = append(checks, res.Checks...)
		return refuseResult(res)
	case errors.Is(err, attest.ErrInvalidEvidence):
		return refuse(append(checks, attest.Check{Name: "evidence", Detail: err.Error()}))
	case err != nil:
		d.outcome, d.reason = "error", err.Error()
		return &AttestResponse{MediaType: ResponseMediaType, NonceID: d.nonceID, Verdict: attest.VerdictNotTrusted, Error: "internal error"},
			http.StatusInternalServerError
	}
	res, err := attest.Evaluate(ctx, v, pol.Attestation, pol.CI)
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return stopped(err)
	}
	if err != nil {
		d.outcome, d.reason = "error", err.Error()
		return &AttestResponse{MediaType: ResponseMediaType, NonceID: d.nonceID, Verdict: attest.VerdictNotTrusted, Error: "internal error"},
			http.StatusInternalServerError
	}
	checks = append(checks, s.selectionCheck(v))
	res.Checks = append(checks, res.Checks...)
	finish(res)
	if !res.Trusted {
		return refuseResult(res)
	}

	if err := ctx.Err(); err != nil {
		return stopped(err)
	}
	// Trusted: the credential. The claims are encoded once, for it and
	// for the response.
	rawClaims, err := json.Marshal(res.Claims)
	var iss *issued
	if err == nil {
		iss, err = s.issuer.issue(now, id, d.nonceID, raw, res, rawClaims)
	}
	var cred *Credential
	if err == nil {
		cred, err = seal(s.rand, id, s.issuer.format, iss.payload, iss.notAfter)
	}
	if errors.Is(err, ErrCAExpired) {
		// This replica cannot issue until its CA is renewed; another may.
		d.outcome, d.reason, d.retryAfter = "error", err.Error(), time.Minute
		return &AttestResponse{MediaType: ResponseMediaType, NonceID: d.nonceID, Verdict: attest.VerdictNotTrusted,
			Error: "the service's credential CA is not valid now: retry later"}, http.StatusServiceUnavailable
	}
	if err != nil {
		d.outcome, d.reason = "error", err.Error()
		return &AttestResponse{MediaType: ResponseMediaType, NonceID: d.nonceID, Verdict: attest.VerdictNotTrusted,
			Error: "internal error issuing the credential"}, http.StatusInternalServerError
	}
	d.outcome, d.credential = "trusted", iss.id
	return &AttestResponse{MediaType: ResponseMediaType, NonceID: d.nonceID, Verdict: attest.VerdictTrusted, Trusted: true,
		Result: res, Credential: cred, rawClaims: rawClaims}, http.StatusOK
}

// selectionCheck checks that verified quotes cover every PCR the service
// asks for.
func (s *Server) selectionCheck(v *attest.Verified) attest.Check {
	covered := map[string]map[int]bool{}
	for _, q := range v.Quotes() {
		for _, sel := range q.Selections {
			m := covered[sel.Alg.String()]
			if m == nil {
				m = map[int]bool{}
				covered[sel.Alg.String()] = m
			}
			for _, p := range sel.PCRs {
				m[p] = true
			}
		}
	}
	var missing []string
	for _, sel := range s.sels {
		for _, p := range sel.PCRs {
			if !covered[sel.Bank][p] {
				missing = append(missing, fmt.Sprintf("%s PCR %d", sel.Bank, p))
			}
		}
	}
	if len(missing) > 0 {
		return attest.Check{Name: "pcr-selection", Detail: "the quotes do not cover " + strings.Join(missing, ", ")}
	}
	parts := make([]string, len(s.sels))
	for i, sel := range s.sels {
		parts[i] = sel.String()
	}
	return attest.Check{Name: "pcr-selection", Passed: true, Detail: "the quotes cover " + strings.Join(parts, "; ")}
}

// encode writes r as JSON. Claims already encoded are spliced in for the
// Result's: encoding/json would validate a json.RawMessage again.
func (r *AttestResponse) encode() ([]byte, error) {
	if r.rawClaims == nil || r.Result == nil {
		return json.Marshal(r)
	}
	res := *r.Result
	res.Claims = nil
	c := *r
	c.Result = &res
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	// The only unescaped `"claims":null` is the Result's: any other would
	// be inside a string, where the quotes are escaped.
	i := bytes.Index(b, []byte(`"claims":null`))
	if i < 0 {
		return nil, errors.New("service: encoding the response: no claims to fill in")
	}
	out := make([]byte, 0, len(b)+len(r.rawClaims))
	out = append(append(append(out, b[:i+len(`"claims":`)]...), r.rawClaims...), b[i+len(`"claims":null`):]...)
	return out, nil
}
