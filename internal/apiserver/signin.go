package apiserver

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/plumbline/plumbline/api"
)

// Studio sign-in links: `plumbline up` asks for one (with the admin token)
// and prints it; the studio redeems its code, once, for the admin token it
// keeps in the tab's sessionStorage. The code travels in the URL's
// fragment, so no server or proxy log ever sees it.

// signinTTL is how long a sign-in link works.
const signinTTL = 10 * time.Minute

// maxSigninLinks bounds the links waiting to be used.
const maxSigninLinks = 64

// signinLinks are the codes not used yet, by their SHA-256.
type signinLinks struct {
	mu    sync.Mutex // protects codes
	codes map[[32]byte]time.Time
}

// add stores a new code and returns it.
func (l *signinLinks) add(now time.Time) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	code := base64.RawURLEncoding.EncodeToString(b[:])
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.codes == nil {
		l.codes = map[[32]byte]time.Time{}
	}
	for k, exp := range l.codes {
		if !now.Before(exp) {
			delete(l.codes, k)
		}
	}
	if len(l.codes) >= maxSigninLinks {
		// Make room: the link closest to expiry goes.
		var oldest [32]byte
		var first time.Time
		for k, exp := range l.codes {
			if first.IsZero() || exp.Before(first) {
				oldest, first = k, exp
			}
		}
		delete(l.codes, oldest)
	}
	l.codes[sha256.Sum256([]byte(code))] = now.Add(signinTTL)
	return code, nil
}

// redeem reports whether code is a live link, and uses it up.
func (l *signinLinks) redeem(code string, now time.Time) bool {
	k := sha256.Sum256([]byte(code))
	l.mu.Lock()
	defer l.mu.Unlock()
	exp, ok := l.codes[k]
	if !ok {
		return false
	}
	delete(l.codes, k)
	return now.Before(exp)
}

// postSigninLink makes a one-time studio sign-in link (admin).
func (s *Server) postSigninLink(w http.ResponseWriter, r *http.Request) error {
	var in api.SigninLinkRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &in); err != nil {
			return err
		}
	}
	now := s.cfg.Now()
	code, err := s.signin.add(now)
	if err != nil {
		return err
	}
	to := "/endpoints"
	if in.Endpoint != "" {
		to += "/" + url.PathEscape(strings.ToLower(in.Endpoint))
	}
	writeJSON(w, http.StatusCreated, api.SigninLink{
		URL:       strings.TrimSuffix(s.cfg.ScoringBaseURL, "/") + "/studio/#signin=" + code + "&to=" + to,
		ExpiresAt: now.Add(signinTTL).UTC(),
	})
	return nil
}

// postSignin redeems a sign-in link's code for the admin token. It needs no
// token: the code is the credential, good once.
func (s *Server) postSignin(w http.ResponseWriter, r *http.Request) {
	var in api.SigninRequest
	if err := decodeJSON(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	if in.Code == "" || !s.signin.redeem(in.Code, s.cfg.Now()) {
		s.writeError(w, r, &Error{Status: http.StatusUnauthorized, Code: "Unauthorized",
			Message: "this sign-in link was already used or has expired: run plumbline up again for a new one, or sign in with the admin token"})
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, api.SigninResponse{Token: s.cfg.AdminToken})
}
