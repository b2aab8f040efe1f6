package service

import (
	"context"
	"io"
)

// SetTestHook sets a function each verification runs while it holds its
// slot, with the verification's context.
func (s *Server) SetTestHook(f func(context.Context)) { s.testHook = f }

// SetRand replaces the randomness credentials are made with.
func (s *Server) SetRand(r io.Reader) { s.rand = r }

// UsedNonces returns the number of nonces in the used-nonce cache.
func (s *Server) UsedNonces() int { return s.nonces.used.len() }

// BodyBudgetFree reports whether n more body bytes would fit in the
// budget of bodies in flight now.
func (s *Server) BodyBudgetFree(n int64) bool {
	if !s.bodies.TryAcquire(n) {
		return false
	}
	s.bodies.Release(n)
	return true
}
