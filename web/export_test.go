package web

import "golang.org/x/crypto/bcrypt"

// Tests hash with bcrypt's minimum cost: the work factor is not what they
// test, and the default makes the race-detector run crawl.
func init() { bcryptCost = bcrypt.MinCost }
