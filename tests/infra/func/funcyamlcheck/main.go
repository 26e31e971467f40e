// Command funcyamlcheck validates func.yaml files with the Knative func
// CLI's own code (knative.dev/func/pkg/functions):
//
//  1. strict YAML decode into fn.Function (unknown fields / wrong types are
//     errors; func itself only prints a warning for unknown fields),
//  2. fn.NewFunction(dir): func's loader, including spec migrations (run on
//     a temporary copy: the loader creates .func/ and .gitignore in the dir),
//  3. f.Initialized(): `created` must be set, otherwise `func invoke` and
//     friends answer "no function found in current directory",
//  4. f.Validate(): func's logical validation (envs, volumes, labels,
//     options, git, ...),
//  5. the JSON schema shipped in the module (schema/func_yaml-schema.json),
//     when --schema is given or found next to the executable.
//
// Usage: funcyamlcheck [--schema FILE] <function-dir-or-func.yaml>...
// Prints "OK <path>" or "ERROR <path>: ..." lines; exit 1 on any error.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/xeipuuv/gojsonschema"
	"gopkg.in/yaml.v2"
	sigsyaml "sigs.k8s.io/yaml"

	fn "knative.dev/func/pkg/functions"
)

const schemaFileName = "func_yaml-schema.json"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("funcyamlcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	schemaPath := fs.String("schema", "", "func.yaml JSON schema (default: "+schemaFileName+" next to this executable, if present)")
	noSchema := fs.Bool("no-schema", false, "skip the JSON schema check")
	version := fs.Bool("version", false, "print the knative.dev/func module version compiled in")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: funcyamlcheck [--schema FILE] <function-dir-or-func.yaml>...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *version {
		fmt.Fprintf(stdout, "knative.dev/func %s (func.yaml specVersion %s)\n", funcModuleVersion(), fn.LastSpecVersion())
		return 0
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}

	var schema *gojsonschema.Schema
	if !*noSchema {
		p := *schemaPath
		if p == "" {
			if exe, err := os.Executable(); err == nil {
				cand := filepath.Join(filepath.Dir(exe), schemaFileName)
				if _, err := os.Stat(cand); err == nil {
					p = cand
				}
			}
		}
		if p != "" {
			raw, err := os.ReadFile(p)
			if err != nil {
				fmt.Fprintf(stderr, "funcyamlcheck: schema: %v\n", err)
				return 2
			}
			schema, err = gojsonschema.NewSchema(gojsonschema.NewBytesLoader(raw))
			if err != nil {
				fmt.Fprintf(stderr, "funcyamlcheck: schema %s: %v\n", p, err)
				return 2
			}
		} else {
			fmt.Fprintf(stderr, "funcyamlcheck: warning: no JSON schema found, schema check skipped (use --schema)\n")
		}
	}

	failed := false
	for _, arg := range fs.Args() {
		errs := check(arg, schema)
		if len(errs) == 0 {
			fmt.Fprintf(stdout, "OK %s\n", arg)
			continue
		}
		failed = true
		for _, e := range errs {
			fmt.Fprintf(stdout, "ERROR %s: %s\n", arg, strings.ReplaceAll(strings.TrimSpace(e), "\n", "\n    "))
		}
	}
	if failed {
		return 1
	}
	return 0
}

func check(arg string, schema *gojsonschema.Schema) (errs []string) {
	dir := arg
	st, err := os.Stat(arg)
	if err != nil {
		return []string{err.Error()}
	}
	if !st.IsDir() {
		if filepath.Base(arg) != fn.FunctionFile {
			return []string{fmt.Sprintf("file must be named %s (func loads <dir>/%s)", fn.FunctionFile, fn.FunctionFile)}
		}
		dir = filepath.Dir(arg)
	}
	file := filepath.Join(dir, fn.FunctionFile)
	raw, err := os.ReadFile(file)
	if err != nil {
		return []string{err.Error()}
	}

	// 1. strict decode (func itself only warns about unknown fields).
	var strict fn.Function
	if err := yaml.UnmarshalStrict(raw, &strict); err != nil {
		errs = append(errs, "strict decode: "+err.Error())
	}

	// 2.-4. func's own loader and validation. fn.NewFunction creates
	// <dir>/.func/ and <dir>/.gitignore as a side effect, so load a copy.
	tmp, err := os.MkdirTemp("", "funcyamlcheck-")
	if err != nil {
		return append(errs, err.Error())
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, fn.FunctionFile), raw, 0o644); err != nil {
		return append(errs, err.Error())
	}
	f, err := fn.NewFunction(tmp)
	if err != nil {
		errs = append(errs, "fn.NewFunction: "+err.Error())
	} else {
		if !f.Initialized() {
			errs = append(errs, "function not initialized: 'created' is missing or zero (func invoke would say \"no function found in current directory\")")
		}
		if err := f.Validate(); err != nil {
			errs = append(errs, "fn.Validate: "+err.Error())
		}
	}

	// 5. JSON schema of the module.
	if schema != nil {
		js, err := sigsyaml.YAMLToJSON(raw)
		if err != nil {
			errs = append(errs, "yaml to json: "+err.Error())
		} else {
			var doc any
			_ = json.Unmarshal(js, &doc)
			res, err := schema.Validate(gojsonschema.NewGoLoader(doc))
			if err != nil {
				errs = append(errs, "schema: "+err.Error())
			} else if !res.Valid() {
				for _, e := range res.Errors() {
					errs = append(errs, "schema: "+e.String())
				}
			}
		}
	}
	return errs
}

func funcModuleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, d := range bi.Deps {
		if d.Path == "knative.dev/func" {
			if d.Replace != nil {
				return d.Version + " => " + d.Replace.Path + " " + d.Replace.Version
			}
			return d.Version
		}
	}
	return "unknown"
}
