package dashboard

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"

	"github.com/boombuler/barcode/qr"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
)

// totpIssuer labels Tollgate in authenticator apps.
const totpIssuer = "Tollgate"

// profileView is the "Your profile" page: the user, their accounts with
// their roles, the password form and the TOTP authenticator. NewSecret,
// NewURI and QR are set once, right after an enrolment started.
type profileView struct {
	User        *store.User
	Accounts    []store.AccountMembership
	Method      store.SignInMethod
	HasPassword bool
	TOTP        bool // confirmed
	TOTPPending bool // enrolment started, not confirmed
	NewSecret   string
	NewURI      string
	QR          template.HTML // the otpauth URI as an inline SVG QR code
	Notice      string
	MinLen      int
}

func (s *identityPages) profileView(r *http.Request, c *dashCaller) (*profileView, error) {
	ctx := r.Context()
	u, err := s.store.GetUser(ctx, c.Key.OwnerID)
	if err != nil {
		return nil, err
	}
	v := &profileView{User: u, Method: c.sess.Method, MinLen: authn.MinPasswordLen}
	if v.Accounts, _, err = s.store.ListAccountsOf(ctx, u.ID, store.Page{}); err != nil {
		return nil, err
	}
	switch _, err := s.store.PasswordHash(ctx, u.ID); {
	case err == nil:
		v.HasPassword = true
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	switch o, err := s.store.GetTOTP(ctx, u.ID); {
	case err == nil:
		v.TOTP, v.TOTPPending = o.Confirmed, !o.Confirmed
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	return v, nil
}

// checkCurrentPassword checks the current password a profile change asks
// for, when the user has one, with the sign-in's throttle: a stolen
// session cannot guess the password faster than the sign-in page. A wrong
// one is charged and audited (codes.PasswordWrongOld).
func (s *identityPages) checkCurrentPassword(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	hash, err := s.store.PasswordHash(r.Context(), c.Key.OwnerID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // no password yet: the session proves who they are
	}
	if err != nil {
		return err
	}
	u, err := s.store.GetUser(r.Context(), c.Key.OwnerID)
	if err != nil {
		return err
	}
	if err := s.core.AdmitSignIn(w, r, u.Email); err != nil {
		return err
	}
	ok, err := s.checkPassword(r.PostForm.Get("current"), hash)
	if err != nil {
		return err
	}
	if !ok {
		s.core.ChargeSignInFailure(r, u.Email)
		s.recordSignInFailure(r, &store.PasswordUser{UserID: u.ID, Email: u.Email}, u.Email, store.SignInPassword, "wrong_current_password")
		return controlplane.Errorf(http.StatusBadRequest, codes.PasswordWrongOld, "Your current password is not right.")
	}
	return nil
}

// dashChangePassword is POST /profile/password {current, password}: the
// user's new password, with the current one when they have one
// (checkCurrentPassword). Every other session of the user ends.
func (s *identityPages) dashChangePassword(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	err := s.checkCurrentPassword(w, r, c)
	if err == nil {
		var u *store.User
		if u, err = s.store.GetUser(r.Context(), c.Key.OwnerID); err == nil {
			pw := r.PostForm.Get("password")
			if err = checkNewPassword(pw, u.Email); err == nil {
				err = s.store.SetPassword(r.Context(), c.Actor, u.ID, hashPassword(pw), c.sess.ID)
			}
		}
	}
	return afterAction(s.Server, w, r, c, "profile", "Your profile", s.profileView, err, func(v *profileView) {
		v.Notice = "Your password was changed. Your other dashboard sessions ended."
	})
}

// dashStartTOTP is POST /profile/totp: a new TOTP secret, shown once with
// its otpauth:// URI and QR code, to confirm with a first code.
func (s *identityPages) dashStartTOTP(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	u, err := s.store.GetUser(r.Context(), c.Key.OwnerID)
	if err != nil {
		return err
	}
	secret, uri, err := authn.NewTOTP(totpIssuer, u.Email)
	if err != nil {
		return err
	}
	err = s.store.StartTOTP(r.Context(), c.Actor, u.ID, secret)
	return afterAction(s.Server, w, r, c, "profile", "Your profile", s.profileView, pageError(err), func(v *profileView) {
		v.NewSecret, v.NewURI, v.QR = secret, uri, qrSVG(uri) // shown once, to the user
	})
}

// dashConfirmTOTP is POST /profile/totp/confirm {code}: the first code of
// the authenticator app confirms the enrolment; from then on a password
// sign-in asks for a code.
func (s *identityPages) dashConfirmTOTP(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	o, err := s.store.GetTOTP(r.Context(), c.Key.OwnerID)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && o.Confirmed):
		err = controlplane.Errorf(http.StatusConflict, codes.TOTPState, "There is no authenticator enrolment to confirm: start one first.")
	case err == nil:
		step, ok, cerr := authn.CheckTOTP(o.Secret, r.PostForm.Get("code"), s.cfg.Now(), o.LastStep)
		if cerr != nil || !ok {
			err = controlplane.Errorf(http.StatusBadRequest, codes.TOTPInvalid,
				"That code is not right. Check that your device's clock is set, and enter the current code of the authenticator app.")
		} else {
			err = pageError(s.store.UseTOTPStep(r.Context(), c.Actor, c.Key.OwnerID, step, true))
		}
	}
	return afterAction(s.Server, w, r, c, "profile", "Your profile", s.profileView, err, func(v *profileView) {
		v.Notice = "Your authenticator is set up: signing in with your password now asks for its code."
	})
}

// dashDeleteTOTP is POST /profile/totp/delete {current}: removes the
// authenticator, with the current password when the user has one.
func (s *identityPages) dashDeleteTOTP(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	err := s.checkCurrentPassword(w, r, c)
	if err == nil {
		if err = s.store.DeleteTOTP(r.Context(), c.Actor, c.Key.OwnerID); errors.Is(err, store.ErrNotFound) {
			err = controlplane.Errorf(http.StatusConflict, codes.TOTPState, "You have no authenticator to remove.")
		}
	}
	return afterAction(s.Server, w, r, c, "profile", "Your profile", s.profileView, err, func(v *profileView) {
		v.Notice = "Your authenticator was removed: signing in asks for your password only."
	})
}

// pageError gives a store's *codes.Error the status of a form's input
// (400): the page shows it in a box.
func pageError(err error) error {
	var ce *codes.Error
	if errors.As(err, &ce) {
		return &controlplane.Error{Status: http.StatusBadRequest, Code: ce.Code, Msg: ce.Message, Cause: err}
	}
	return err
}

// qrSVG draws text as a QR code (medium error correction) in an inline
// SVG of dark modules, with the 4-module quiet zone ISO/IEC 18004 asks
// for; "" if it cannot be encoded. The markup holds only numbers we
// computed, so it is safe as HTML.
func qrSVG(text string) template.HTML {
	code, err := qr.Encode(text, qr.M, qr.Auto)
	if err != nil {
		return ""
	}
	b := code.Bounds()
	n := b.Dx()
	var path strings.Builder
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			if r, _, _, _ := code.At(b.Min.X+x, b.Min.Y+y).RGBA(); r == 0 {
				fmt.Fprintf(&path, "M%d %dh1v1h-1z", x+4, y+4)
			}
		}
	}
	return template.HTML(fmt.Sprintf(`<svg class="qr" id="totp-qr" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" role="img" aria-label="QR code of the authenticator key"><rect width="100%%" height="100%%" fill="#fff"/><path fill="#000" d="%s"/></svg>`,
		n+8, n+8, path.String()))
}
