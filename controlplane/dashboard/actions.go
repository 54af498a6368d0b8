package dashboard

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/ids"
)

// Form actions that change an object and have no secret to show answer
// with a redirect (303) to their page, which then shows what was done in a
// banner (?done=<key>&id=<object>); a refusal renders the page again with
// the error and its status, and changes nothing.

// notices are the banners a page shows after an action, by ?done= key. The
// text is fixed here, never taken from the URL; %s is the object's ID.
var notices = map[string]string{
	"domain-reserved":       "Domain reserved (%s).",
	"domain-released":       "Reserved domain %s released.",
	"addr-reserved":         "TCP address reserved (%s).",
	"addr-released":         "Reserved TCP address %s released.",
	"policy-created":        "IP policy %s created. Add rules to it below.",
	"policy-updated":        "IP policy %s saved.",
	"policy-deleted":        "IP policy %s deleted with its rules.",
	"rule-created":          "Rule %s added.",
	"rule-updated":          "Rule %s saved.",
	"rule-deleted":          "Rule %s deleted.",
	"restriction-created":   "IP restriction %s created.",
	"restriction-updated":   "IP restriction %s saved.",
	"restriction-enforced":  "IP restriction %s now enforces its policies: addresses they do not allow are refused.",
	"restriction-dry-run":   "IP restriction %s is in dry run: refusals are only logged.",
	"restriction-deleted":   "IP restriction %s deleted.",
	"ssh-key-added":         "SSH key %s added.",
	"credential-deleted":    "Credential %s deleted.",
	"member-updated":        "Roles of %s saved.",
	"member-removed":        "User %s removed from the account, with the credentials they owned in it.",
	"session-restarting":    "The agent of session %s was told to restart; it reconnects in a moment.",
	"api-key-created-other": "API key %s created.",
	"source-added":          "Source added to event subscription %s.",
	"source-removed":        "Source removed from event subscription %s.",
}

// notice is the banner of the request's ?done=, or "".
func notice(r *http.Request) string {
	q := r.URL.Query()
	msg, ok := notices[q.Get("done")]
	if !ok {
		return ""
	}
	id := q.Get("id")
	if _, _, err := ids.Split(id, ""); err != nil {
		id = "" // only an ID, never other text from the URL
	}
	return strings.Replace(msg, "%s", id, 1)
}

// doneURL is page with the banner of key about object id.
func doneURL(page, key, id string) string {
	sep := "?"
	if strings.Contains(page, "?") {
		sep = "&"
	}
	return page + sep + "done=" + url.QueryEscape(key) + "&id=" + url.QueryEscape(id)
}

// redirectAfter ends a form action whose outcome is err: on success a
// redirect to page with the banner of key about id; otherwise the page
// again with the error (afterAction).
func redirectAfter[V any](s *Server, w http.ResponseWriter, r *http.Request, c *dashCaller, nav, title string,
	build func(*http.Request, *dashCaller) (V, error), err error, page, key, id string) error {
	if err != nil {
		return afterAction(s, w, r, c, nav, title, build, err, nil)
	}
	http.Redirect(w, r, doneURL(page, key, id), http.StatusSeeOther)
	return nil
}

// formID returns the path's {id}, which must carry one of prefixes, or a
// 400 codes.DashboardBadInput that says what was expected (what: "an IP
// policy (ipp_...)").
func formID(r *http.Request, what string, prefixes ...string) (string, error) {
	id := r.PathValue("id")
	if err := controlplane.CheckID(id, prefixes...); err != nil {
		return "", controlplane.Errorf(http.StatusBadRequest, codes.DashboardBadInput, "%q is not the ID of %s.", controlplane.Truncate(id, 60), what)
	}
	return id, nil
}

// formBool reads a true/false form field (a hidden field of a toggle).
func formBool(r *http.Request, name string) (bool, error) {
	switch r.PostForm.Get(name) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, controlplane.Errorf(http.StatusBadRequest, codes.DashboardBadInput, "%s must be true or false.", name)
}

// formText is a trimmed text field.
func formText(r *http.Request, name string) string { return strings.TrimSpace(r.PostForm.Get(name)) }
