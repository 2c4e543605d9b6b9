package apiserver

import (
	"testing"
	"time"
)

func TestSigninLinksExpireAndAreBounded(t *testing.T) {
	var l signinLinks
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	code, err := l.add(now)
	if err != nil {
		t.Fatal(err)
	}
	if l.redeem(code, now.Add(signinTTL)) {
		t.Errorf("a link redeemed at its expiry worked")
	}
	first, _ := l.add(now)
	for i := 0; i < maxSigninLinks; i++ {
		l.add(now.Add(time.Duration(i+1) * time.Second))
	}
	if len(l.codes) != maxSigninLinks {
		t.Errorf("%d links kept, want at most %d", len(l.codes), maxSigninLinks)
	}
	if l.redeem(first, now.Add(time.Minute)) {
		t.Errorf("the oldest link survived %d newer ones", maxSigninLinks)
	}
}
