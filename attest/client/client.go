package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/codesignval/csv/attest/wire"
)

// maxResponse caps a response body from the service.
const maxResponse = 8 << 20

// DefaultEventLog is where Linux exposes the firmware's event log.
const DefaultEventLog = "/sys/kernel/security/tpm0/binary_bios_measurements"

// Client attests a host to a service.
type Client struct {
	// Attester holds the TPM's keys.
	Attester *Attester
	// URL is the service's base URL ("https://attest.example.com").
	URL string
	// HTTP is the HTTP client (default http.DefaultClient). Whatever its
	// CheckRedirect, the client never follows a redirect: it would send
	// the evidence again, to wherever the answer points (ErrRedirected).
	HTTP *http.Client
	// EventLog is the host's raw TCG event log.
	EventLog []byte
}

// ErrRefused is matched by a *RefusedError.
var ErrRefused = errors.New("client: attestation refused")

// RefusedError is the service's refusal: the host is not trusted.
type RefusedError struct {
	Response *wire.AttestResponse
}

func (e *RefusedError) Error() string {
	var failed []string
	if e.Response.Result != nil {
		for _, c := range e.Response.Result.Checks {
			if !c.Passed {
				failed = append(failed, c.Name+": "+c.Detail)
			}
		}
	}
	if e.Response.Error != "" {
		failed = append(failed, e.Response.Error)
	}
	if len(failed) == 0 {
		return "client: attestation refused (403 Forbidden), and the service gave no reason: its answer names no failed check and no error"
	}
	return "client: attestation refused: " + strings.Join(failed, "; ")
}

// ErrInvalidAnswer is wrapped by the error of an answer that contradicts
// itself: a 200 that is not a trusted verdict with a credential, or a 403
// whose verdict or result says trusted. Nothing in it is believed: the
// host is not trusted, and no credential was received.
var ErrInvalidAnswer = errors.New("client: the service's answer contradicts itself")

// checkAnswer returns an error wrapping ErrInvalidAnswer for an answer
// whose status, verdict, result and credential disagree.
func checkAnswer(status int, r *wire.AttestResponse) error {
	resultTrusted := r.Result != nil && (r.Result.Trusted || r.Result.Verdict == wire.VerdictTrusted)
	var wrong []string
	if status == http.StatusOK {
		if !r.Trusted || r.Verdict != wire.VerdictTrusted {
			wrong = append(wrong, fmt.Sprintf("its verdict is %q (trusted: %v)", r.Verdict, r.Trusted))
		}
		if r.Result != nil && !resultTrusted {
			wrong = append(wrong, fmt.Sprintf("its result's verdict is %q", r.Result.Verdict))
		}
		if r.Credential == nil {
			wrong = append(wrong, "it holds no credential")
		}
		if len(wrong) > 0 {
			return fmt.Errorf("%w: 200 OK, but %s: no credential was received", ErrInvalidAnswer, strings.Join(wrong, ", "))
		}
		return nil
	}
	if r.Trusted || r.Verdict == wire.VerdictTrusted || resultTrusted {
		return fmt.Errorf("%w: %d %s, but its verdict or result says trusted: the host is not trusted", ErrInvalidAnswer, status, http.StatusText(status))
	}
	return nil
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// HTTPError is an answer the client cannot use: a request the service did
// not judge (malformed, busy, an internal error).
type HTTPError struct {
	Status  int
	Message string
	// RetryAfter is the Retry-After header, if any.
	RetryAfter string
}

func (e *HTTPError) Error() string {
	s := fmt.Sprintf("client: the service answered %d %s", e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RetryAfter != "" {
		s += " (retry after " + e.RetryAfter + "s)"
	}
	return s
}

// ErrRedirected is wrapped by the error of a request the service
// answered with a redirect, which the client does not follow.
var ErrRedirected = errors.New("client: the service redirected")

// refuseRedirect is the client's CheckRedirect.
func refuseRedirect(req *http.Request, via []*http.Request) error {
	from := ""
	if len(via) > 0 {
		from = " " + via[len(via)-1].URL.Redacted()
	}
	return fmt.Errorf("%w%s to %s: not following it (it would send the request again there); give the service's final URL",
		ErrRedirected, from, req.URL.Redacted())
}

// httpClient returns the HTTP client, refusing redirects.
func (c *Client) httpClient() *http.Client {
	hc := http.Client{}
	if c.HTTP != nil {
		hc = *c.HTTP
	}
	hc.CheckRedirect = refuseRedirect
	return &hc
}

// post sends a JSON body; out receives a 200 answer (and, for okStatus, the
// other statuses listed). It returns the status and the body.
func (c *Client) post(ctx context.Context, path string, in, out any, okStatus ...int) (int, []byte, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.URL, "/")+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, fmt.Errorf("client: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		var ue *url.Error
		if errors.Is(err, ErrRedirected) && errors.As(err, &ue) {
			return 0, nil, ue.Err // says where from and to
		}
		return 0, nil, fmt.Errorf("client: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return 0, nil, fmt.Errorf("client: reading the answer: %w", err)
	}
	if len(body) > maxResponse {
		return 0, nil, fmt.Errorf("client: the answer is over %d bytes", maxResponse)
	}
	ok := resp.StatusCode == http.StatusOK
	for _, s := range okStatus {
		ok = ok || resp.StatusCode == s
	}
	if !ok {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(body, &e)
		return resp.StatusCode, body, &HTTPError{Status: resp.StatusCode, Message: e.Error, RetryAfter: resp.Header.Get("Retry-After")}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return resp.StatusCode, body, fmt.Errorf("client: the answer (%d) is not JSON: %w", resp.StatusCode, err)
	}
	return resp.StatusCode, body, nil
}

// Nonce asks the service for a nonce bound to this host's AK and EK.
func (c *Client) Nonce(ctx context.Context) (*wire.NonceResponse, error) {
	ek, err := c.Attester.EKKeySHA256()
	if err != nil {
		return nil, err
	}
	var n wire.NonceResponse
	req := wire.NonceRequest{AKName: hex.EncodeToString(c.Attester.AKName()), EKKeySHA256: hex.EncodeToString(ek[:])}
	if _, _, err := c.post(ctx, wire.PathNonce, req, &n); err != nil {
		return nil, err
	}
	if len(n.PCRSelections) == 0 {
		return nil, errors.New("client: the service asks for no PCRs")
	}
	return &n, nil
}

// Evidence quotes what the nonce response asks for and returns the
// submission.
func (c *Client) Evidence(n *wire.NonceResponse) (*wire.AttestRequest, error) {
	nonce, err := wire.DecodeNonce(n.Nonce)
	if err != nil {
		return nil, err
	}
	quotes, pcrs, err := c.Attester.Quote(n.PCRSelections, nonce)
	if err != nil {
		return nil, err
	}
	return &wire.AttestRequest{
		Nonce: n.Nonce, EventLog: c.EventLog, Quotes: quotes, PCRs: wire.PCRsToJSON(pcrs),
		AKPublic: c.Attester.AKPublic(), EKPublic: c.Attester.EKPublic(), EKCertificate: c.Attester.EKCertificate(),
	}, nil
}

// Submit sends evidence. It returns the service's decision: a trusted one
// (200, verdict trusted, a credential), or a *RefusedError carrying the
// refusal (403, not trusted); an *HTTPError for a request the service did
// not judge; an error wrapping ErrInvalidAnswer for an answer that
// contradicts itself (a 200 without a credential, a 403 that says
// trusted).
func (c *Client) Submit(ctx context.Context, req *wire.AttestRequest) (*wire.AttestResponse, error) {
	var r wire.AttestResponse
	status, body, err := c.post(ctx, wire.PathAttest, req, &r, http.StatusForbidden)
	if err != nil {
		return nil, err
	}
	r.Raw = body
	if err := checkAnswer(status, &r); err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return &r, &RefusedError{Response: &r}
	}
	return &r, nil
}

// Outcome is a successful attestation.
type Outcome struct {
	Response *wire.AttestResponse
	// Payload is the credential's decrypted payload: a DER certificate
	// (Credential.Format x509) or a compact JWS (token, ear).
	Payload []byte
}

// Attest runs the whole exchange: nonce, quotes, submission, and on
// success TPM2_ActivateCredential and the payload's decryption. A refusal
// is a *RefusedError (errors.Is ErrRefused).
func (c *Client) Attest(ctx context.Context) (*Outcome, error) {
	if len(c.EventLog) == 0 {
		return nil, errors.New("client: no event log")
	}
	n, err := c.Nonce(ctx)
	if err != nil {
		return nil, err
	}
	req, err := c.Evidence(n)
	if err != nil {
		return nil, err
	}
	r, err := c.Submit(ctx, req)
	if err != nil {
		return nil, err
	}
	payload, err := c.Attester.Open(r.Credential)
	if err != nil {
		return &Outcome{Response: r}, err
	}
	return &Outcome{Response: r, Payload: payload}, nil
}
