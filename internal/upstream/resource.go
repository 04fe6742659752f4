package upstream

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// resourceID is a URL reduced to what identifies a protected resource: scheme and host lower-cased,
// the default port dropped, no query or fragment, the path without a trailing slash.
type resourceID struct {
	scheme, host, path string
}

func parseResourceID(raw string) (resourceID, *url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return resourceID{}, nil, fmt.Errorf("%q is not a URL", raw)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return resourceID{}, nil, fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	if u.User != nil {
		return resourceID{}, nil, fmt.Errorf("%q carries user info", raw)
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return resourceID{scheme: scheme, host: host, path: strings.TrimRight(u.EscapedPath(), "/")}, u, nil
}

func (r resourceID) String() string { return r.scheme + "://" + r.host + r.path }

// covers reports whether r identifies o or a path prefix of it (whole segments only:
// https://h/mc does not cover https://h/mcp).
func (r resourceID) covers(o resourceID) bool {
	if r.scheme != o.scheme || r.host != o.host {
		return false
	}
	return r.path == o.path || r.path == "" || strings.HasPrefix(o.path, r.path+"/")
}

// CanonicalResource is the one function that derives the RFC 8707 `resource` sent in authorize,
// code exchange and refresh requests, and remembered on the connection
// (docs/architecture.md#resource-indicator).
//
// upstreamURL is the operator's upstream URL (rewritePattern); prmResource is the `resource` of the
// protected-resource metadata discovery accepted, or "" when none is known. A PRM resource is
// accepted when it equals the upstream URL or is a path prefix of it, and is then returned as the
// PRM wrote it (the resource server compares audiences against its own spelling). Without one, the
// canonical form of the upstream URL is returned: lower-case scheme and host, no default port, no
// query or fragment, no trailing slash. A PRM resource that does not cover the upstream is an
// *Error with code prm_resource_mismatch.
func CanonicalResource(upstreamURL, prmResource string) (string, error) {
	up, _, err := parseResourceID(upstreamURL)
	if err != nil {
		return "", &Error{Bucket: BucketGatewayConfig, Code: CodeInvalidUpstreamURL, Reason: "the upstream URL (rewritePattern) is not usable: " + err.Error()}
	}
	if prmResource == "" {
		return up.String(), nil
	}
	prm, pu, err := parseResourceID(prmResource)
	if err == nil && (pu.RawQuery != "" || pu.Fragment != "") {
		err = fmt.Errorf("%q has a query or fragment", prmResource)
	}
	if err != nil || !prm.covers(up) {
		reason := fmt.Sprintf("the protected resource metadata names resource %q, which is neither the upstream URL %q nor a path prefix of it", prmResource, up.String())
		if err != nil {
			reason = "the protected resource metadata's resource is not usable: " + err.Error()
		}
		return "", &Error{Bucket: BucketOAuthSetup, Code: CodePRMResourceMismatch, Reason: reason}
	}
	return prmResource, nil
}
