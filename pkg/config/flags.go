// Package config holds both binaries' settings as typed structs, binds them
// to command-line flags that each fall back to an environment variable, and
// validates them in one place. The flag and variable names are the original
// proxymatic image's compatibility surface: do not rename them.
package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// envAnnotation marks which environment variable a flag reads.
const envAnnotation = "proxymatic_env"

// emptyAnnotation marks a flag whose variable set to "" means "" (off), not
// "use the default".
const emptyAnnotation = "proxymatic_env_empty"

// UsageError is a bad flag or environment value; the commands exit 2 on it.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error { return &UsageError{Msg: fmt.Sprintf(format, args...)} }

// value is a pflag.Value whose Set error says what was wanted, so that the
// same message serves both the flag and its variable.
type value struct {
	typ  string
	str  func() string
	set  func(string) error
	want string
}

func (v *value) String() string { return v.str() }
func (v *value) Type() string   { return v.typ }
func (v *value) Set(s string) error {
	if err := v.set(s); err != nil {
		return fmt.Errorf("want %s", v.want)
	}
	return nil
}

// binder registers flags with their variables on one flag set.
type binder struct{ fs *pflag.FlagSet }

func (b binder) add(v pflag.Value, name, short, env, usage string) *pflag.Flag {
	if env != "" {
		usage += " [$" + env + "]"
	}
	f := b.fs.VarPF(v, name, short, usage)
	if env != "" {
		_ = b.fs.SetAnnotation(name, envAnnotation, []string{env})
	}
	return f
}

func (b binder) str(p *string, name, short, env, def, usage string) {
	*p = def
	b.add(&value{typ: "string", want: "a string", str: func() string { return *p },
		set: func(s string) error { *p = s; return nil }}, name, short, env, usage)
}

// emptyDisables makes the flag's variable, set to "", turn it off (see
// ApplyEnvLookup).
func (b binder) emptyDisables(name string) {
	_ = b.fs.SetAnnotation(name, emptyAnnotation, []string{"true"})
}

func (b binder) boolean(p *bool, name, short, env string, def bool, usage string) {
	*p = def
	f := b.add(&value{typ: "bool", want: "true or false", str: func() string { return strconv.FormatBool(*p) },
		set: func(s string) error {
			v, err := parseBool(s)
			if err == nil {
				*p = v
			}
			return err
		}}, name, short, env, usage)
	f.NoOptDefVal = "true"
	if !def {
		// pflag prints a default only when it is not the zero value; --help
		// states every default.
		f.Usage += " (default false)"
	}
}

// integer binds an int that must lie in [lo, hi].
func (b binder) integer(p *int, name, short, env string, def, lo, hi int, usage string) {
	*p = def
	want := fmt.Sprintf("a whole number from %d to %d", lo, hi)
	b.add(&value{typ: "int", want: want, str: func() string { return strconv.Itoa(*p) },
		set: func(s string) error {
			v, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || v < lo || v > hi {
				return fmt.Errorf("out of range")
			}
			*p = v
			return nil
		}}, name, short, env, usage)
}

// seconds binds a duration given in whole seconds, as the original
// REFRESH_INTERVAL was.
func (b binder) seconds(p *time.Duration, name, short, env string, def int, usage string) {
	*p = time.Duration(def) * time.Second
	b.add(&value{typ: "seconds", want: "whole seconds", str: func() string { return strconv.Itoa(int(*p / time.Second)) },
		set: func(s string) error {
			v, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || v < 1 || v > 86400 {
				return fmt.Errorf("out of range")
			}
			*p = time.Duration(v) * time.Second
			return nil
		}}, name, short, env, usage)
}

// duration binds a Go duration (2s, 500ms) or whole seconds (30, as the
// original's times were given and --marathon-timeout takes them), 0 or more.
func (b binder) duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	*p = def
	b.add(&value{typ: "duration", want: "a duration such as 2s or 500ms, or whole seconds", str: func() string { return p.String() },
		set: func(s string) error {
			s = strings.TrimSpace(s)
			if n, err := strconv.Atoi(s); err == nil {
				if n < 0 || n > maxSeconds {
					return fmt.Errorf("out of range")
				}
				*p = time.Duration(n) * time.Second
				return nil
			}
			v, err := time.ParseDuration(s)
			if err != nil || v < 0 {
				return fmt.Errorf("bad duration")
			}
			*p = v
			return nil
		}}, name, "", env, usage)
}

// maxSeconds bounds a time given in whole seconds (ten years).
const maxSeconds = 10 * 365 * 86400

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "t", "true", "yes", "y", "on":
		return true, nil
	case "0", "f", "false", "no", "n", "off":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean")
}

// ApplyEnv sets every flag that was not given on the command line from its
// environment variable, when that is set and not empty. The flag wins.
// getenv cannot tell a variable set to "" from an unset one: both count as
// unset (ApplyEnvLookup tells them apart).
func ApplyEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	return ApplyEnvLookup(fs, func(k string) (string, bool) {
		v := getenv(k)
		return v, v != ""
	})
}

// ApplyEnvLookup is ApplyEnv with lookup (os.LookupEnv) telling a variable
// set to "" from an unset one. An empty variable counts as unset, except
// for a flag bound with emptyDisables: there "" is a value, as the original
// image read STATUS_ENDPOINT ("" turned the endpoint off).
func ApplyEnvLookup(fs *pflag.FlagSet, lookup func(string) (string, bool)) error {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		names := f.Annotations[envAnnotation]
		if len(names) == 0 {
			return
		}
		raw, set := lookup(names[0])
		if !set || (raw == "" && len(f.Annotations[emptyAnnotation]) == 0) {
			return
		}
		if serr := f.Value.Set(raw); serr != nil {
			err = usagef("invalid %s %q: %v", names[0], clipValue(raw), serr)
		}
	})
	return err
}

func clipValue(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}

// size binds a byte count given as a number of bytes or with a unit:
// KiB, MiB, GiB (and K, M, G) are powers of 1024, KB, MB, GB powers of
// 1000, B is bytes; the unit is case-insensitive. It must lie in [lo, hi].
func (b binder) size(p *int64, name, env string, def, lo, hi int64, usage string) {
	*p = def
	want := fmt.Sprintf("a size from %s to %s, in bytes or with a unit such as 256MiB", FormatSize(lo), FormatSize(hi))
	b.add(&value{typ: "size", want: want, str: func() string { return FormatSize(*p) },
		set: func(s string) error {
			v, err := ParseSize(s)
			if err != nil || v < lo || v > hi {
				return fmt.Errorf("out of range")
			}
			*p = v
			return nil
		}}, name, "", env, usage)
}

// ParseSize reads a size as the size flags take it (see binder.size).
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 18 {
		return 0, fmt.Errorf("not a size")
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, err
	}
	mult := int64(0)
	switch strings.ToUpper(strings.TrimSpace(s[i:])) {
	case "", "B":
		mult = 1
	case "K", "KIB":
		mult = 1 << 10
	case "M", "MIB":
		mult = 1 << 20
	case "G", "GIB":
		mult = 1 << 30
	case "KB":
		mult = 1e3
	case "MB":
		mult = 1e6
	case "GB":
		mult = 1e9
	default:
		return 0, fmt.Errorf("unknown unit")
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("too large")
	}
	return n * mult, nil
}

// FormatSize writes a size in the largest binary unit that divides it.
func FormatSize(n int64) string {
	for _, u := range []struct {
		unit string
		mult int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.unit
		}
	}
	return strconv.FormatInt(n, 10)
}

// durationOrSeconds binds a duration given as a Go duration (30s, 1m) or
// as whole seconds (30), the way the original image's other times were
// given. It must be positive.
func (b binder) durationOrSeconds(p *time.Duration, name, env string, def time.Duration, usage string) {
	*p = def
	b.add(&value{typ: "duration", want: "a positive duration such as 30s, or whole seconds", str: func() string { return p.String() },
		set: func(s string) error {
			s = strings.TrimSpace(s)
			var v time.Duration
			if n, err := strconv.Atoi(s); err == nil {
				if n > 86400 {
					return fmt.Errorf("out of range")
				}
				v = time.Duration(n) * time.Second
			} else if v, err = time.ParseDuration(s); err != nil {
				return err
			}
			if v <= 0 {
				return fmt.Errorf("not positive")
			}
			*p = v
			return nil
		}}, name, "", env, usage)
}
