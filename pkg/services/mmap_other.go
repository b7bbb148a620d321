//go:build !unix

package services

import "os"

func readMapped(*os.File, func()) (*Decoded, bool, error) { return nil, false, nil }
