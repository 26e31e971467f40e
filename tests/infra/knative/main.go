// Command knvalidate validates Kubernetes/Knative manifests offline with the
// upstream Go types and the upstream SetDefaults/Validate code of Knative
// Serving, Knative Eventing and eventing-kafka-broker, i.e. the same code
// their admission webhooks run.
//
// Usage:
//
//	knvalidate [flags] <file-or-dir>...
//	knvalidate --print-versions
//
// Every *.yaml / *.yml file (multi-document) under the given paths is read.
// kustomization.yaml files are not validated as objects; instead the paths
// they reference (resources, components, patches, ...) must exist, and files
// used as patches by a kustomization are skipped (they are partial objects).
//
// For each document: the Go type is chosen by apiVersion+kind, the document
// is decoded STRICTLY (unknown or duplicate fields are errors), metadata is
// checked like the API server does (name required and well formed, labels,
// annotations), then for Knative kinds SetDefaults(ctx) and Validate(ctx)
// run inside apis.WithinCreate with the default feature flags and config of
// a fresh installation (overridable with --eventing-feature /
// --serving-feature). Output: one "OK <Kind>/<name> <file>" line per valid
// object, "ERROR ..." lines otherwise, "WARN ..." lines for warnings; the
// exit code is 1 if any error was found, 2 on usage errors.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	kafkaeventingv1 "knative.dev/eventing-kafka-broker/control-plane/pkg/apis/eventing/v1"
	kafkasinkv1alpha1 "knative.dev/eventing-kafka-broker/control-plane/pkg/apis/eventing/v1alpha1"
	kafkasourcesv1 "knative.dev/eventing-kafka-broker/control-plane/pkg/apis/sources/v1"
	kafkasourcesv1beta1 "knative.dev/eventing-kafka-broker/control-plane/pkg/apis/sources/v1beta1"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	"knative.dev/eventing/pkg/apis/feature"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	"knative.dev/pkg/apis"
	servingconfig "knative.dev/serving/pkg/apis/config"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
)

// object is what every supported Go type satisfies.
type object interface {
	metav1.Object
}

// knativeObject is a type with webhook defaulting + validation.
type knativeObject interface {
	object
	apis.Defaultable
	apis.Validatable
}

type kindSpec struct {
	newObj     func() object
	namespaced bool
	nameFn     apivalidation.ValidateNameFunc
	// extra validators run after the object's own SetDefaults/Validate
	// (other webhooks of the same installation, controller-side checks).
	extra []func(ctx context.Context, obj object) *apis.FieldError
}

var dnsSubdomain = apivalidation.NameIsDNSSubdomain

func rbacName(name string, prefix bool) []string { return path.IsValidPathSegmentName(name) }

var kinds = map[string]kindSpec{
	// Knative Serving
	"serving.knative.dev/v1, Kind=Service": {newObj: func() object { return &servingv1.Service{} }, namespaced: true, nameFn: dnsSubdomain},

	// Knative Eventing (core)
	"eventing.knative.dev/v1, Kind=Broker": {newObj: func() object { return &eventingv1.Broker{} }, namespaced: true, nameFn: dnsSubdomain,
		extra: []func(context.Context, object) *apis.FieldError{kafkaBrokerWebhook}},
	"eventing.knative.dev/v1, Kind=Trigger":        {newObj: func() object { return &eventingv1.Trigger{} }, namespaced: true, nameFn: dnsSubdomain},
	"sources.knative.dev/v1, Kind=ApiServerSource": {newObj: func() object { return &sourcesv1.ApiServerSource{} }, namespaced: true, nameFn: dnsSubdomain},
	"sources.knative.dev/v1, Kind=PingSource":      {newObj: func() object { return &sourcesv1.PingSource{} }, namespaced: true, nameFn: dnsSubdomain},

	// eventing-kafka-broker
	"sources.knative.dev/v1beta1, Kind=KafkaSource": {newObj: func() object { return &kafkasourcesv1beta1.KafkaSource{} }, namespaced: true, nameFn: dnsSubdomain,
		extra: []func(context.Context, object) *apis.FieldError{kafkaSourceDelivery}},
	"sources.knative.dev/v1, Kind=KafkaSource": {newObj: func() object { return &kafkasourcesv1.KafkaSource{} }, namespaced: true, nameFn: dnsSubdomain,
		extra: []func(context.Context, object) *apis.FieldError{kafkaSourceDelivery}},
	"eventing.knative.dev/v1alpha1, Kind=KafkaSink": {newObj: func() object { return &kafkasinkv1alpha1.KafkaSink{} }, namespaced: true, nameFn: dnsSubdomain},

	// core Kubernetes: strict decode + metadata + a few required fields
	"v1, Kind=ServiceAccount": {newObj: func() object { return &corev1.ServiceAccount{} }, namespaced: true, nameFn: dnsSubdomain},
	"v1, Kind=ConfigMap": {newObj: func() object { return &corev1.ConfigMap{} }, namespaced: true, nameFn: dnsSubdomain,
		extra: []func(context.Context, object) *apis.FieldError{configMapKeys}},
	"v1, Kind=Secret": {newObj: func() object { return &corev1.Secret{} }, namespaced: true, nameFn: dnsSubdomain,
		extra: []func(context.Context, object) *apis.FieldError{secretKeys}},
	"v1, Kind=Namespace": {newObj: func() object { return &corev1.Namespace{} }, namespaced: false, nameFn: apivalidation.NameIsDNSLabel},
	"rbac.authorization.k8s.io/v1, Kind=Role": {newObj: func() object { return &rbacv1.Role{} }, namespaced: true, nameFn: rbacName,
		extra: []func(context.Context, object) *apis.FieldError{rbacRules}},
	"rbac.authorization.k8s.io/v1, Kind=ClusterRole": {newObj: func() object { return &rbacv1.ClusterRole{} }, namespaced: false, nameFn: rbacName,
		extra: []func(context.Context, object) *apis.FieldError{rbacRules}},
	"rbac.authorization.k8s.io/v1, Kind=RoleBinding": {newObj: func() object { return &rbacv1.RoleBinding{} }, namespaced: true, nameFn: rbacName,
		extra: []func(context.Context, object) *apis.FieldError{rbacBinding}},
	"rbac.authorization.k8s.io/v1, Kind=ClusterRoleBinding": {newObj: func() object { return &rbacv1.ClusterRoleBinding{} }, namespaced: false, nameFn: rbacName,
		extra: []func(context.Context, object) *apis.FieldError{rbacBinding}},

	// prometheus-operator
	"monitoring.coreos.com/v1, Kind=PrometheusRule": {newObj: func() object { return &monitoringv1.PrometheusRule{} }, namespaced: true, nameFn: dnsSubdomain,
		extra: []func(context.Context, object) *apis.FieldError{prometheusRule}},
}

type result struct {
	errors   int
	objects  int
	warnings int
}

type validator struct {
	ctx       context.Context
	out       io.Writer
	res       result
	skipFiles map[string]string // abs path -> reason (kustomize patches)
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type kvFlag map[string]string

func (k kvFlag) String() string { return fmt.Sprint(map[string]string(k)) }
func (k kvFlag) Set(s string) error {
	key, val, ok := strings.Cut(s, "=")
	if !ok || key == "" {
		return fmt.Errorf("expected key=value, got %q", s)
	}
	k[key] = val
	return nil
}

func run(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("knvalidate", flag.ContinueOnError)
	fset.SetOutput(stderr)
	printVersions := fset.Bool("print-versions", false, "print the versions of the Knative modules compiled in and exit")
	evFeatures := kvFlag{}
	svFeatures := kvFlag{}
	fset.Var(evFeatures, "eventing-feature", "eventing config-features entry key=value (repeatable), e.g. cross-namespace-event-links=enabled")
	fset.Var(svFeatures, "serving-feature", "serving config-features entry key=value (repeatable), e.g. kubernetes.podspec-affinity=enabled")
	fset.Usage = func() {
		fmt.Fprintf(stderr, "usage: knvalidate [flags] <file-or-dir>...\n       knvalidate --print-versions\n")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		return 2
	}
	if *printVersions {
		return doPrintVersions(stdout, stderr)
	}
	if fset.NArg() == 0 {
		fset.Usage()
		return 2
	}

	ctx, err := webhookContext(evFeatures, svFeatures)
	if err != nil {
		fmt.Fprintf(stderr, "knvalidate: %v\n", err)
		return 2
	}
	v := &validator{ctx: ctx, out: stdout, skipFiles: map[string]string{}}

	var files []string
	for _, p := range fset.Args() {
		fs, err := collect(p)
		if err != nil {
			fmt.Fprintf(stdout, "ERROR %s: %v\n", p, err)
			v.res.errors++
			continue
		}
		files = append(files, fs...)
	}

	// First pass: kustomization files (reference checks + patch skip list).
	var manifests []string
	for _, f := range files {
		if isKustomization(f) {
			v.checkKustomization(f)
		} else {
			manifests = append(manifests, f)
		}
	}
	for _, f := range manifests {
		abs, _ := filepath.Abs(f)
		if reason, ok := v.skipFiles[abs]; ok {
			fmt.Fprintf(stdout, "SKIP %s (%s)\n", f, reason)
			continue
		}
		v.validateFile(f)
	}

	fmt.Fprintf(stdout, "knvalidate: %d object(s), %d error(s), %d warning(s)\n", v.res.objects, v.res.errors, v.res.warnings)
	if v.res.errors > 0 {
		return 1
	}
	return 0
}

// webhookContext mirrors the context the Knative admission webhooks hand
// to SetDefaults/Validate on a CREATE request: config stores with the
// defaults of a fresh installation, plus apis.WithinCreate.
func webhookContext(evFeatures, svFeatures map[string]string) (context.Context, error) {
	ctx := context.Background()

	// Eventing config-features (defaults + overrides). Missing flags in
	// the context would make e.g. DeliverySpec.timeout "disallowed".
	flags, err := feature.NewFlagsConfigFromMap(evFeatures)
	if err != nil {
		return nil, fmt.Errorf("eventing features: %w", err)
	}
	ctx = feature.ToContext(ctx, flags)
	// Other eventing stores (config-br-defaults, config-ping-defaults,
	// kafka source defaults) use FromContextOrDefaults, i.e. the same
	// defaults as an empty ConfigMap.

	// Serving config-defaults / config-features / config-autoscaler.
	scfg := servingconfig.FromContextOrDefaults(ctx) // all defaults
	if len(svFeatures) > 0 {
		feats, err := servingconfig.NewFeaturesConfigFromMap(svFeatures)
		if err != nil {
			return nil, fmt.Errorf("serving features: %w", err)
		}
		scfg.Features = feats
	}
	ctx = servingconfig.ToContext(ctx, scfg)

	// The kafka webhook additionally allows different namespaces; the core
	// webhooks decide per object. Validation happens on CREATE.
	ctx = apis.WithinCreate(ctx)
	return ctx, nil
}

func collect(p string) ([]string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{p}, nil
	}
	var out []string
	err = filepath.WalkDir(p, func(fp string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if fp != p && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		ext := strings.ToLower(filepath.Ext(fp))
		if ext == ".yaml" || ext == ".yml" {
			out = append(out, fp)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

func isKustomization(f string) bool {
	switch filepath.Base(f) {
	case "kustomization.yaml", "kustomization.yml", "Kustomization":
		return true
	}
	return false
}

// checkKustomization verifies that local paths referenced by a
// kustomization exist and records patch files so they are not validated
// as complete objects.
func (v *validator) checkKustomization(f string) {
	data, err := os.ReadFile(f)
	if err != nil {
		v.errorf("%s: %v", f, err)
		return
	}
	var k map[string]any
	if err := yaml.Unmarshal(data, &k); err != nil {
		v.errorf("%s: kustomization: %v", f, err)
		return
	}
	dir := filepath.Dir(f)
	ok := true
	check := func(field, ref string, patch bool) {
		if ref == "" || strings.Contains(ref, "://") || strings.HasPrefix(ref, "github.com/") || strings.Contains(ref, "?ref=") {
			return // remote reference: not checked offline
		}
		p := filepath.Join(dir, ref)
		if _, err := os.Stat(p); err != nil {
			v.errorf("%s: kustomization %s entry %q does not exist", f, field, ref)
			ok = false
			return
		}
		if patch {
			abs, _ := filepath.Abs(p)
			v.skipFiles[abs] = "patch used by " + f
		}
	}
	strList := func(field string, patch bool) {
		raw, present := k[field]
		if !present || raw == nil {
			return
		}
		list, isList := raw.([]any)
		if !isList {
			v.errorf("%s: kustomization %s must be a list", f, field)
			ok = false
			return
		}
		for _, e := range list {
			if s, isStr := e.(string); isStr {
				check(field, s, patch)
			} else if m, isMap := e.(map[string]any); isMap {
				if s, isStr := m["path"].(string); isStr {
					check(field, s, patch)
				}
			}
		}
	}
	strList("resources", false)
	strList("components", false)
	strList("crds", false)
	strList("patches", true)
	strList("patchesStrategicMerge", true)
	strList("patchesJson6902", true)
	for _, gen := range []string{"configMapGenerator", "secretGenerator"} {
		if list, isList := k[gen].([]any); isList {
			for _, g := range list {
				m, _ := g.(map[string]any)
				for _, fld := range []string{"files", "envs"} {
					if fl, isList := m[fld].([]any); isList {
						for _, e := range fl {
							s, _ := e.(string)
							if _, src, found := strings.Cut(s, "="); found {
								s = src
							}
							check(gen+"."+fld, s, true)
						}
					}
				}
			}
		}
	}
	if ok {
		fmt.Fprintf(v.out, "OK kustomization %s\n", f)
	}
}

func (v *validator) errorf(format string, a ...any) {
	v.res.errors++
	fmt.Fprintf(v.out, "ERROR "+format+"\n", a...)
}

func (v *validator) validateFile(f string) {
	data, err := os.ReadFile(f)
	if err != nil {
		v.errorf("%s: %v", f, err)
		return
	}
	reader := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 1; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			v.errorf("%s: document %d: %v", f, i, err)
			return
		}
		v.validateDoc(fmt.Sprintf("%s#%d", f, i), doc)
	}
}

func (v *validator) validateDoc(where string, doc []byte) {
	var generic map[string]any
	if err := yaml.Unmarshal(doc, &generic); err != nil {
		v.errorf("%s: invalid YAML: %v", where, err)
		return
	}
	if len(generic) == 0 {
		return // empty document (comments only / trailing ---)
	}
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil || tm.APIVersion == "" || tm.Kind == "" {
		v.errorf("%s: document has no apiVersion/kind", where)
		return
	}
	name := "<unnamed>"
	if md, ok := generic["metadata"].(map[string]any); ok {
		if n, ok := md["name"].(string); ok && n != "" {
			name = n
		}
	}
	id := tm.Kind + "/" + name
	v.res.objects++

	key := tm.APIVersion + ", Kind=" + tm.Kind
	spec, ok := kinds[key]
	if !ok {
		v.errorf("%s: %s: unsupported kind %s %s", where, id, tm.APIVersion, tm.Kind)
		return
	}
	obj := spec.newObj()
	if msgs := strictDecode(doc, obj); len(msgs) > 0 {
		for _, m := range msgs {
			v.errorf("%s: %s: strict decoding: %s", where, id, oneLine(m))
		}
		return
	}

	var fieldErrs *apis.FieldError
	// Metadata as the API server checks it for every object.
	fieldErrs = fieldErrs.Also(metadataErrors(obj, spec))

	// Knative webhook: SetDefaults then Validate.
	ctx := v.ctx
	if kobj, ok := obj.(knativeObject); ok {
		kobj.SetDefaults(ctx)
		fieldErrs = fieldErrs.Also(kobj.Validate(ctx))
	}
	for _, extra := range spec.extra {
		fieldErrs = fieldErrs.Also(extra(ctx, obj))
	}

	errs := fieldErrs.Filter(apis.ErrorLevel)
	warns := fieldErrs.Filter(apis.WarningLevel)
	if warns != nil {
		for _, w := range warns.WrappedErrors() {
			v.res.warnings++
			fmt.Fprintf(v.out, "WARN %s: %s: %s\n", where, id, oneLine(w.Error()))
		}
	}
	if errs == nil {
		fmt.Fprintf(v.out, "OK %s %s\n", id, where)
		return
	}
	for _, e := range errs.WrappedErrors() {
		v.errorf("%s: %s: %s", where, id, oneLine(e.Error()))
	}
}

// strictDecode decodes like the API server does for a request with
// fieldValidation=Strict: duplicate YAML keys, duplicate JSON fields and
// unknown fields are errors, field names are case-sensitive, and unknown
// fields are reported with their full path.
func strictDecode(doc []byte, obj any) []string {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return []string{err.Error()}
	}
	strictErrs, err := kjson.UnmarshalStrict(js, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, e := range strictErrs {
		out = append(out, e.Error())
	}
	return out
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " | ")), " ")
}

// fieldListToFieldError converts a Kubernetes field.ErrorList into a
// knative FieldError so both are reported the same way.
func fieldListToFieldError(list field.ErrorList) *apis.FieldError {
	var out *apis.FieldError
	for _, e := range list {
		out = out.Also(&apis.FieldError{Message: e.ErrorBody(), Paths: []string{e.Field}})
	}
	return out
}

func metadataErrors(obj object, spec kindSpec) *apis.FieldError {
	requiresNS := spec.namespaced && obj.GetNamespace() != ""
	var list field.ErrorList
	if !spec.namespaced && obj.GetNamespace() != "" {
		// The API server ignores metadata.namespace for cluster-scoped kinds;
		// report it as a warning and validate the rest.
		ns := obj.GetNamespace()
		obj.SetNamespace("")
		list = apivalidation.ValidateObjectMetaAccessor(obj, false, spec.nameFn, field.NewPath("metadata"))
		obj.SetNamespace(ns)
		w := &apis.FieldError{Message: "namespace is ignored for a cluster-scoped kind", Paths: []string{"metadata.namespace"}, Level: apis.WarningLevel}
		return fieldListToFieldError(list).Also(w)
	}
	list = apivalidation.ValidateObjectMetaAccessor(obj, requiresNS, spec.nameFn, field.NewPath("metadata"))
	return fieldListToFieldError(list)
}

// kafkaBrokerWebhook runs the eventing-kafka-broker webhook's Broker
// validation (BrokerStub), which runs in addition to the core eventing
// webhook for brokers of class Kafka / KafkaNamespaced.
func kafkaBrokerWebhook(ctx context.Context, obj object) *apis.FieldError {
	b := obj.(*eventingv1.Broker)
	stub := &kafkaeventingv1.BrokerStub{TypeMeta: b.TypeMeta, ObjectMeta: *b.ObjectMeta.DeepCopy(), Spec: *b.Spec.DeepCopy()}
	return stub.Validate(apis.AllowDifferentNamespace(ctx))
}

// kafkaSourceDelivery: the KafkaSource webhook does not validate
// spec.delivery, but the kafka source controller copies it into an
// internal ConsumerGroup whose webhook validates it with
// DeliverySpec.Validate (consumer_group_validation.go); an invalid delivery
// therefore leaves the source never Ready. Reported here up-front.
func kafkaSourceDelivery(ctx context.Context, obj object) *apis.FieldError {
	var fe *apis.FieldError
	switch s := obj.(type) {
	case *kafkasourcesv1beta1.KafkaSource:
		fe = s.Spec.Delivery.Validate(ctx)
	case *kafkasourcesv1.KafkaSource:
		fe = s.Spec.Delivery.Validate(ctx)
	}
	if fe == nil {
		return nil
	}
	// Make the origin of the check explicit in the message.
	var out *apis.FieldError
	for _, e := range fe.WrappedErrors() {
		e.Details = strings.TrimSpace(e.Details + " (checked like the internal ConsumerGroup webhook, which receives spec.delivery from the kafka source controller)")
		out = out.Also(e)
	}
	return out.ViaField("spec", "delivery")
}

func configMapKeys(_ context.Context, obj object) *apis.FieldError {
	cm := obj.(*corev1.ConfigMap)
	var fe *apis.FieldError
	for k := range cm.Data {
		for _, msg := range validation.IsConfigMapKey(k) {
			fe = fe.Also(apis.ErrInvalidKeyName(k, "data", msg))
		}
		if _, dup := cm.BinaryData[k]; dup {
			fe = fe.Also(&apis.FieldError{Message: "duplicate of key present in binaryData", Paths: []string{"data[" + k + "]"}})
		}
	}
	for k := range cm.BinaryData {
		for _, msg := range validation.IsConfigMapKey(k) {
			fe = fe.Also(apis.ErrInvalidKeyName(k, "binaryData", msg))
		}
	}
	return fe
}

func secretKeys(_ context.Context, obj object) *apis.FieldError {
	s := obj.(*corev1.Secret)
	var fe *apis.FieldError
	for k := range s.Data {
		for _, msg := range validation.IsConfigMapKey(k) {
			fe = fe.Also(apis.ErrInvalidKeyName(k, "data", msg))
		}
	}
	for k := range s.StringData {
		for _, msg := range validation.IsConfigMapKey(k) {
			fe = fe.Also(apis.ErrInvalidKeyName(k, "stringData", msg))
		}
	}
	return fe
}

func policyRulesErrors(rules []rbacv1.PolicyRule, allowNonResource bool) *apis.FieldError {
	var fe *apis.FieldError
	for i, r := range rules {
		var e *apis.FieldError
		if len(r.Verbs) == 0 {
			e = e.Also(apis.ErrMissingField("verbs"))
		}
		if len(r.NonResourceURLs) > 0 {
			if !allowNonResource {
				e = e.Also(&apis.FieldError{Message: "namespaced rules cannot apply to non-resource URLs", Paths: []string{"nonResourceURLs"}})
			}
			if len(r.APIGroups) > 0 || len(r.Resources) > 0 || len(r.ResourceNames) > 0 {
				e = e.Also(&apis.FieldError{Message: "rules cannot apply to both regular resources and non-resource URLs", Paths: []string{"nonResourceURLs"}})
			}
		} else {
			if len(r.APIGroups) == 0 {
				e = e.Also(&apis.FieldError{Message: "resource rules must supply at least one api group", Paths: []string{"apiGroups"}})
			}
			if len(r.Resources) == 0 {
				e = e.Also(&apis.FieldError{Message: "resource rules must supply at least one resource", Paths: []string{"resources"}})
			}
		}
		fe = fe.Also(e.ViaFieldIndex("rules", i))
	}
	return fe
}

func rbacRules(_ context.Context, obj object) *apis.FieldError {
	switch r := obj.(type) {
	case *rbacv1.Role:
		return policyRulesErrors(r.Rules, false)
	case *rbacv1.ClusterRole:
		if r.AggregationRule != nil && len(r.AggregationRule.ClusterRoleSelectors) == 0 {
			return apis.ErrMissingField("aggregationRule.clusterRoleSelectors")
		}
		return policyRulesErrors(r.Rules, true)
	}
	return nil
}

func rbacBinding(_ context.Context, obj object) *apis.FieldError {
	var ref rbacv1.RoleRef
	var subjects []rbacv1.Subject
	namespaced := false
	switch b := obj.(type) {
	case *rbacv1.RoleBinding:
		ref, subjects, namespaced = b.RoleRef, b.Subjects, true
	case *rbacv1.ClusterRoleBinding:
		ref, subjects = b.RoleRef, b.Subjects
	}
	var fe *apis.FieldError
	if ref.APIGroup != rbacv1.GroupName {
		fe = fe.Also(apis.ErrInvalidValue(ref.APIGroup, "roleRef.apiGroup", "must be "+rbacv1.GroupName))
	}
	switch ref.Kind {
	case "ClusterRole":
	case "Role":
		if !namespaced {
			fe = fe.Also(apis.ErrInvalidValue(ref.Kind, "roleRef.kind", "a ClusterRoleBinding can only reference a ClusterRole"))
		}
	default:
		fe = fe.Also(apis.ErrInvalidValue(ref.Kind, "roleRef.kind", "must be Role or ClusterRole"))
	}
	if ref.Name == "" {
		fe = fe.Also(apis.ErrMissingField("roleRef.name"))
	}
	for i, s := range subjects {
		var e *apis.FieldError
		if s.Name == "" {
			e = e.Also(apis.ErrMissingField("name"))
		}
		switch s.Kind {
		case rbacv1.ServiceAccountKind:
			if s.APIGroup != "" {
				e = e.Also(apis.ErrInvalidValue(s.APIGroup, "apiGroup", "must be empty for ServiceAccount"))
			}
			if !namespaced && s.Namespace == "" {
				e = e.Also(apis.ErrMissingField("namespace"))
			}
		case rbacv1.UserKind, rbacv1.GroupKind:
			if s.APIGroup != rbacv1.GroupName {
				e = e.Also(apis.ErrInvalidValue(s.APIGroup, "apiGroup", "must be "+rbacv1.GroupName))
			}
		default:
			e = e.Also(apis.ErrInvalidValue(s.Kind, "kind", "must be ServiceAccount, User or Group"))
		}
		fe = fe.Also(e.ViaFieldIndex("subjects", i))
	}
	return fe
}

// prometheusRule: structural checks only (the PromQL itself is not parsed).
func prometheusRule(_ context.Context, obj object) *apis.FieldError {
	pr := obj.(*monitoringv1.PrometheusRule)
	var fe *apis.FieldError
	seen := map[string]bool{}
	for gi, g := range pr.Spec.Groups {
		var ge *apis.FieldError
		if g.Name == "" {
			ge = ge.Also(apis.ErrMissingField("name"))
		} else if seen[g.Name] {
			ge = ge.Also(apis.ErrInvalidValue(g.Name, "name", "duplicate group name"))
		}
		seen[g.Name] = true
		for ri, r := range g.Rules {
			var re *apis.FieldError
			switch {
			case r.Record == "" && r.Alert == "":
				re = re.Also(apis.ErrMissingOneOf("record", "alert"))
			case r.Record != "" && r.Alert != "":
				re = re.Also(apis.ErrMultipleOneOf("record", "alert"))
			}
			if r.Expr.String() == "" {
				re = re.Also(apis.ErrMissingField("expr"))
			}
			if r.Record != "" && (r.For != nil || len(r.Annotations) > 0) {
				re = re.Also(&apis.FieldError{Message: "recording rules cannot have for/annotations", Paths: []string{"for", "annotations"}})
			}
			ge = ge.Also(re.ViaFieldIndex("rules", ri))
		}
		fe = fe.Also(ge.ViaFieldIndex("groups", gi))
	}
	return fe.ViaField("spec")
}

func doPrintVersions(stdout, stderr io.Writer) int {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintln(stderr, "knvalidate: no build info")
		return 1
	}
	want := []string{
		"knative.dev/serving",
		"knative.dev/eventing",
		"knative.dev/eventing-kafka-broker",
		"knative.dev/pkg",
		"k8s.io/api",
		"k8s.io/apimachinery",
		"github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring",
	}
	found := map[string]string{}
	for _, d := range bi.Deps {
		m := d
		ver := m.Version
		if m.Replace != nil {
			ver = fmt.Sprintf("%s (replaced by %s %s)", m.Version, m.Replace.Path, m.Replace.Version)
		}
		found[m.Path] = ver
	}
	fmt.Fprintf(stdout, "go %s\n", bi.GoVersion)
	rc := 0
	for _, w := range want {
		if v, ok := found[w]; ok {
			fmt.Fprintf(stdout, "%s %s\n", w, v)
		} else {
			fmt.Fprintf(stdout, "%s (not linked)\n", w)
			rc = 1
		}
	}
	return rc
}
