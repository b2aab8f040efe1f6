// Package tsahttp asks an RFC 3161 time-stamping authority over HTTP
// (RFC 3161 section 3.4: a POST of application/timestamp-query answered
// with application/timestamp-reply). It is the only timestamp code that
// links net/http: the packages that verify, and csv's signing pipeline,
// take a timestamp.TSA and leave the transport to their caller.
package tsahttp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/codesignval/csv/signing/timestamp"
)

// DefaultTimeout bounds a request when New is given no client.
const DefaultTimeout = 30 * time.Second

// Client is a TSA at an http or https URL.
type Client struct {
	url      string
	redacted string
	http     *http.Client
}

// New checks that rawURL is an http or https URL with a host and returns
// the TSA there. client nil means a client with DefaultTimeout.
func New(rawURL string, client *http.Client) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &timestamp.Error{Err: fmt.Errorf("the timestamp URL %q is not an http or https URL", rawURL)}
	}
	if client == nil {
		client = &http.Client{Timeout: DefaultTimeout}
	}
	return &Client{url: rawURL, redacted: u.Redacted(), http: client}, nil
}

// String is the TSA's URL without credentials.
func (c *Client) String() string { return c.redacted }

// RoundTrip posts req and returns the answer's body, refusing an answer
// that is not 200 OK or is over timestamp.MaxResponse bytes.
func (c *Client) RoundTrip(ctx context.Context, req []byte) ([]byte, error) {
	fail := func(format string, args ...any) error {
		return &timestamp.Error{TSA: c.redacted, Err: fmt.Errorf(format, args...)}
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(req))
	if err != nil {
		return nil, fail("%v", err)
	}
	hreq.Header.Set("Content-Type", "application/timestamp-query")
	hreq.Header.Set("Accept", "application/timestamp-reply")
	hresp, err := c.http.Do(hreq)
	if err != nil {
		// The *url.Error names the URL; Redacted keeps credentials out.
		return nil, &timestamp.Error{Err: err}
	}
	defer hresp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(hresp.Body, timestamp.MaxResponse+1))
	switch {
	case err != nil:
		return nil, fail("reading the answer: %v", err)
	case hresp.StatusCode != http.StatusOK:
		return nil, fail("HTTP %s", hresp.Status)
	case len(body) > timestamp.MaxResponse:
		return nil, fail("the answer is over %d bytes", timestamp.MaxResponse)
	}
	return body, nil
}

// Request asks the TSA at rawURL to countersign signature: New, then
// timestamp.Stamp.
func Request(ctx context.Context, rawURL string, client *http.Client, signature []byte) (resp, token []byte, err error) {
	c, err := New(rawURL, client)
	if err != nil {
		return nil, nil, err
	}
	return timestamp.Stamp(ctx, c, signature)
}
