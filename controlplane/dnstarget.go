package controlplane

import "strings"

// CNAMETarget returns the DNS name a reserved domain's owner points the
// domain at (a CNAME record: domain → target), the reserved_domains
// object's cname_target (docs/api-compatibility.md#reserved-domains,
// docs/wildcard-endpoints.md#dns): the public hostname of the domain's
// region, from publicHostnames (region code → hostname; the control
// plane's --public-hostname, tollgated dev's edge name).
//
// It is "" (null in the API) when the region has no public hostname
// configured, and for a domain that already resolves to the region's edges
// because it is the public hostname or a name under it (in dev, names under
// the base domain). A wildcard domain ("*.example.com") gets the same target,
// for a wildcard CNAME record. domain and the hostnames are lower-case ASCII.
func CNAMETarget(publicHostnames map[string]string, domain, region string) string {
	target := publicHostnames[region]
	if target == "" {
		return ""
	}
	name := strings.TrimPrefix(domain, "*.")
	if name == target || strings.HasSuffix(name, "."+target) {
		return ""
	}
	return target
}
