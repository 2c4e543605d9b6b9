package auth

import "testing"

func TestAuthorizedBearer(t *testing.T) {
	tests := []struct {
		name, header, want string
		ok                 bool
	}{
		{"match", "Bearer s3cret", "s3cret", true},
		{"scheme case", "bearer s3cret", "s3cret", true},
		{"spaces around", "Bearer   s3cret  ", "s3cret", true},
		{"wrong secret", "Bearer nope", "s3cret", false},
		{"basic scheme", "Basic s3cret", "s3cret", false},
		{"seven characters, any scheme", "XXXXXXs3cret", "s3cret", false},
		{"no token", "Bearer ", "s3cret", false},
		{"empty configured secret never matches", "Bearer ", "", false},
		{"empty configured secret, some token", "Bearer x", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AuthorizedBearer(tt.header, tt.want); got != tt.ok {
				t.Errorf("AuthorizedBearer(%q, %q): got %v, want %v", tt.header, tt.want, got, tt.ok)
			}
		})
	}
}
