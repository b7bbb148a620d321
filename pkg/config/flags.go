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

// duration binds a Go duration (2s, 500ms).
func (b binder) duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	*p = def
	b.add(&value{typ: "duration", want: "a duration such as 2s or 500ms", str: func() string { return p.String() },
		set: func(s string) error {
			v, err := time.ParseDuration(strings.TrimSpace(s))
			if err != nil || v < 0 {
				return fmt.Errorf("bad duration")
			}
			*p = v
			return nil
		}}, name, "", env, usage)
}

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
func ApplyEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
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
		raw := getenv(names[0])
		if raw == "" {
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
