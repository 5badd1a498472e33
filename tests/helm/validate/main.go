// validate-k8s: strict validation of a stream of Kubernetes manifests (helm template output).
//
//	helm template release helm/raftkv | validate-k8s [-]      # or: validate-k8s FILE...
//
// Every YAML document must be an object of a known apiVersion/kind; it is decoded into the
// typed struct of k8s.io/api with unknown fields and duplicate keys rejected
// (sigs.k8s.io/yaml.UnmarshalStrict), so a misspelled or misplaced field fails instead of
// being dropped silently by the API server. A few checks of what the API server itself would
// refuse follow (names, labels, selectors, ports, env names, probes). Empty documents (a
// template that rendered nothing) are skipped. Exit 0 when all objects pass, 1 otherwise
// (every problem is printed), 2 on bad usage or unreadable input.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// kinds maps "apiVersion/kind" to a constructor of its typed object. Anything else fails.
var kinds = map[string]func() any{
	"v1/ConfigMap":                       func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                          func() any { return &corev1.Secret{} },
	"v1/Service":                         func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                  func() any { return &corev1.ServiceAccount{} },
	"v1/Pod":                             func() any { return &corev1.Pod{} },
	"v1/PersistentVolumeClaim":           func() any { return &corev1.PersistentVolumeClaim{} },
	"apps/v1/StatefulSet":                func() any { return &appsv1.StatefulSet{} },
	"apps/v1/Deployment":                 func() any { return &appsv1.Deployment{} },
	"apps/v1/DaemonSet":                  func() any { return &appsv1.DaemonSet{} },
	"batch/v1/Job":                       func() any { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget":      func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy": func() any { return &networkingv1.NetworkPolicy{} },
	"networking.k8s.io/v1/Ingress":       func() any { return &networkingv1.Ingress{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any {
		return &autoscalingv2.HorizontalPodAutoscaler{}
	},
	"rbac.authorization.k8s.io/v1/Role":        func() any { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1/RoleBinding": func() any { return &rbacv1.RoleBinding{} },
}

type problems struct{ list []string }

func (p *problems) add(where, format string, args ...any) {
	p.list = append(p.list, where+": "+fmt.Sprintf(format, args...))
}

func main() {
	files := os.Args[1:]
	if len(files) == 0 {
		files = []string{"-"}
	}
	for _, f := range files {
		if f == "-h" || f == "--help" {
			fmt.Println("usage: validate-k8s [FILE|-]...   (multi-document YAML; - or nothing = stdin)")
			return
		}
	}
	var p problems
	objects := 0
	seen := map[string]string{}
	for _, f := range files {
		var r io.Reader = os.Stdin
		name := "<stdin>"
		if f != "-" {
			fh, err := os.Open(f)
			if err != nil {
				fmt.Fprintln(os.Stderr, "validate-k8s:", err)
				os.Exit(2)
			}
			defer fh.Close()
			r, name = fh, f
		}
		n, err := validateStream(name, r, &p, seen)
		if err != nil {
			fmt.Fprintln(os.Stderr, "validate-k8s:", err)
			os.Exit(2)
		}
		objects += n
	}
	if objects == 0 {
		p.add("input", "no object found")
	}
	for _, s := range p.list {
		fmt.Fprintln(os.Stderr, "FAIL", s)
	}
	if len(p.list) > 0 {
		fmt.Fprintf(os.Stderr, "validate-k8s: %d object(s), %d problem(s)\n", objects, len(p.list))
		os.Exit(1)
	}
	fmt.Printf("validate-k8s: %d object(s) valid\n", objects)
}

func validateStream(name string, r io.Reader, p *problems, seen map[string]string) (int, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	objects := 0
	for doc := 1; ; doc++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objects, nil
		}
		if err != nil {
			return objects, fmt.Errorf("%s: document %d: %w", name, doc, err)
		}
		if isEmpty(raw) {
			continue
		}
		objects++
		where := fmt.Sprintf("%s#%d", name, doc)
		validateDoc(where, raw, p, seen)
	}
}

// isEmpty: only comments, blank lines and document markers.
func isEmpty(raw []byte) bool {
	for _, line := range strings.Split(string(raw), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") || t == "---" || t == "..." {
			continue
		}
		return false
	}
	return true
}

func validateDoc(where string, raw []byte, p *problems, seen map[string]string) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(raw, &tm); err != nil {
		p.add(where, "not a YAML object: %v", err)
		return
	}
	if tm.APIVersion == "" || tm.Kind == "" {
		p.add(where, "apiVersion and kind are required (got %q, %q)", tm.APIVersion, tm.Kind)
		return
	}
	key := tm.APIVersion + "/" + tm.Kind
	mk, ok := kinds[key]
	if !ok {
		known := make([]string, 0, len(kinds))
		for k := range kinds {
			known = append(known, k)
		}
		sort.Strings(known)
		p.add(where, "unknown kind %s (known: %s)", key, strings.Join(known, ", "))
		return
	}
	obj := mk()
	if err := yaml.UnmarshalStrict(raw, obj); err != nil {
		p.add(where, "%s: %v", key, err)
		return
	}
	meta := objectMeta(obj)
	where = fmt.Sprintf("%s %s %q", where, tm.Kind, meta.Name)
	id := tm.Kind + "/" + meta.Namespace + "/" + meta.Name
	if prev, dup := seen[id]; dup {
		p.add(where, "duplicate object (also %s)", prev)
	}
	seen[id] = where
	checkMeta(where, meta, tm.Kind == "Service", p)
	switch o := obj.(type) {
	case *corev1.Service:
		checkService(where, o, p)
	case *corev1.Pod:
		checkPodSpec(where+" spec", &o.Spec, nil, p)
	case *appsv1.StatefulSet:
		var claims []string
		for _, c := range o.Spec.VolumeClaimTemplates {
			claims = append(claims, c.Name)
		}
		checkWorkload(where, o.Spec.Selector, &o.Spec.Template, claims, p)
		if o.Spec.ServiceName == "" {
			// Allowed by newer API servers, but a StatefulSet without a governing Service
			// gives its pods no DNS names.
			p.add(where, "spec.serviceName is empty")
		}
		for i, c := range o.Spec.VolumeClaimTemplates {
			checkName(fmt.Sprintf("%s spec.volumeClaimTemplates[%d]", where, i), c.Name, validation.IsDNS1123Label, p)
			if _, ok := c.Spec.Resources.Requests[corev1.ResourceStorage]; !ok {
				p.add(where, "volumeClaimTemplates[%d] has no storage request", i)
			}
		}
	case *appsv1.Deployment:
		checkWorkload(where, o.Spec.Selector, &o.Spec.Template, nil, p)
	case *appsv1.DaemonSet:
		checkWorkload(where, o.Spec.Selector, &o.Spec.Template, nil, p)
	case *batchv1.Job:
		checkPodSpec(where+" spec.template.spec", &o.Spec.Template.Spec, nil, p)
	case *policyv1.PodDisruptionBudget:
		if (o.Spec.MinAvailable == nil) == (o.Spec.MaxUnavailable == nil) {
			p.add(where, "exactly one of minAvailable and maxUnavailable must be set")
		}
		if o.Spec.Selector == nil {
			p.add(where, "spec.selector is required")
		} else if _, err := metav1.LabelSelectorAsSelector(o.Spec.Selector); err != nil {
			p.add(where, "spec.selector: %v", err)
		}
	}
}

func objectMeta(obj any) metav1.ObjectMeta {
	type hasMeta interface{ GetObjectMeta() metav1.Object }
	if m, ok := obj.(hasMeta); ok {
		o := m.GetObjectMeta()
		return metav1.ObjectMeta{Name: o.GetName(), Namespace: o.GetNamespace(),
			Labels: o.GetLabels(), Annotations: o.GetAnnotations()}
	}
	return metav1.ObjectMeta{}
}

func checkName(where, name string, f func(string) []string, p *problems) {
	if name == "" {
		p.add(where, "name is empty")
		return
	}
	for _, e := range f(name) {
		p.add(where, "name %q: %s", name, e)
	}
}

func checkLabels(where string, l map[string]string, p *problems) {
	for k, v := range l {
		for _, e := range validation.IsQualifiedName(k) {
			p.add(where, "label key %q: %s", k, e)
		}
		for _, e := range validation.IsValidLabelValue(v) {
			p.add(where, "label %q value %q: %s", k, v, e)
		}
	}
}

func checkMeta(where string, m metav1.ObjectMeta, isService bool, p *problems) {
	if isService {
		checkName(where+" metadata", m.Name, validation.IsDNS1035Label, p)
	} else {
		checkName(where+" metadata", m.Name, validation.IsDNS1123Subdomain, p)
	}
	if m.Namespace != "" {
		for _, e := range validation.IsDNS1123Label(m.Namespace) {
			p.add(where, "namespace %q: %s", m.Namespace, e)
		}
	}
	checkLabels(where+" metadata.labels", m.Labels, p)
	for k := range m.Annotations {
		for _, e := range validation.IsQualifiedName(strings.ToLower(k)) {
			p.add(where, "annotation key %q: %s", k, e)
		}
	}
}

func checkService(where string, s *corev1.Service, p *problems) {
	if len(s.Spec.Ports) == 0 {
		p.add(where, "spec.ports is empty")
	}
	names := map[string]bool{}
	for i, port := range s.Spec.Ports {
		w := fmt.Sprintf("%s spec.ports[%d]", where, i)
		if port.Port < 1 || port.Port > 65535 {
			p.add(w, "port %d out of range", port.Port)
		}
		if len(s.Spec.Ports) > 1 && port.Name == "" {
			p.add(w, "name is required when there are several ports")
		}
		if port.Name != "" {
			for _, e := range validation.IsDNS1123Label(port.Name) {
				p.add(w, "name %q: %s", port.Name, e)
			}
			if names[port.Name] {
				p.add(w, "duplicate port name %q", port.Name)
			}
			names[port.Name] = true
		}
		if port.TargetPort.Type == intstr.String {
			for _, e := range validation.IsValidPortName(port.TargetPort.StrVal) {
				p.add(w, "targetPort %q: %s", port.TargetPort.StrVal, e)
			}
		}
	}
	checkLabels(where+" spec.selector", s.Spec.Selector, p)
	if s.Spec.ClusterIP == corev1.ClusterIPNone && s.Spec.Type != "" && s.Spec.Type != corev1.ServiceTypeClusterIP {
		p.add(where, "clusterIP None needs type ClusterIP")
	}
}

func checkWorkload(where string, sel *metav1.LabelSelector, tpl *corev1.PodTemplateSpec, claims []string, p *problems) {
	if sel == nil {
		p.add(where, "spec.selector is required")
	} else {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			p.add(where, "spec.selector: %v", err)
		} else if s.Empty() || !s.Matches(labels.Set(tpl.Labels)) {
			p.add(where, "spec.selector %v does not match the pod template's labels %v", s, tpl.Labels)
		}
	}
	checkLabels(where+" spec.template.metadata.labels", tpl.Labels, p)
	checkPodSpec(where+" spec.template.spec", &tpl.Spec, claims, p)
}

func checkPodSpec(where string, s *corev1.PodSpec, claims []string, p *problems) {
	if len(s.Containers) == 0 {
		p.add(where, "no containers")
	}
	volumes := map[string]bool{}
	for _, c := range claims {
		volumes[c] = true
	}
	for _, v := range s.Volumes {
		checkName(where+" volume", v.Name, validation.IsDNS1123Label, p)
		volumes[v.Name] = true
	}
	all := append(append([]corev1.Container{}, s.InitContainers...), s.Containers...)
	names := map[string]bool{}
	for _, c := range all {
		w := where + " container " + c.Name
		checkName(w, c.Name, validation.IsDNS1123Label, p)
		if names[c.Name] {
			p.add(w, "duplicate container name")
		}
		names[c.Name] = true
		if c.Image == "" {
			p.add(w, "image is empty")
		}
		ports := map[string]bool{}
		for _, port := range c.Ports {
			if port.ContainerPort < 1 || port.ContainerPort > 65535 {
				p.add(w, "containerPort %d out of range", port.ContainerPort)
			}
			if port.Name != "" {
				for _, e := range validation.IsValidPortName(port.Name) {
					p.add(w, "port name %q: %s", port.Name, e)
				}
				ports[port.Name] = true
			}
		}
		envs := map[string]bool{}
		for _, e := range c.Env {
			for _, msg := range validation.IsEnvVarName(e.Name) {
				p.add(w, "env %q: %s", e.Name, msg)
			}
			if envs[e.Name] {
				p.add(w, "env %q set twice", e.Name)
			}
			envs[e.Name] = true
			if e.Value != "" && e.ValueFrom != nil {
				p.add(w, "env %q has both value and valueFrom", e.Name)
			}
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				p.add(w, "volumeMount %q names no volume", m.Name)
			}
		}
		for name, pr := range map[string]*corev1.Probe{"livenessProbe": c.LivenessProbe,
			"readinessProbe": c.ReadinessProbe, "startupProbe": c.StartupProbe} {
			checkProbe(w+" "+name, pr, ports, p)
		}
		if c.LivenessProbe != nil && c.LivenessProbe.SuccessThreshold > 1 {
			p.add(w, "livenessProbe.successThreshold must be 1")
		}
		if c.StartupProbe != nil && c.StartupProbe.SuccessThreshold > 1 {
			p.add(w, "startupProbe.successThreshold must be 1")
		}
	}
}

func checkProbe(where string, pr *corev1.Probe, ports map[string]bool, p *problems) {
	if pr == nil {
		return
	}
	n := 0
	if pr.Exec != nil {
		n++
	}
	if pr.HTTPGet != nil {
		n++
		checkPortRef(where+" httpGet.port", pr.HTTPGet.Port, ports, p)
	}
	if pr.TCPSocket != nil {
		n++
		checkPortRef(where+" tcpSocket.port", pr.TCPSocket.Port, ports, p)
	}
	if pr.GRPC != nil {
		n++
		if pr.GRPC.Port < 1 || pr.GRPC.Port > 65535 {
			p.add(where, "grpc.port %d out of range (grpc probes take a number, not a name)", pr.GRPC.Port)
		}
	}
	if n != 1 {
		p.add(where, "exactly one probe handler must be set (found %d)", n)
	}
	if pr.TimeoutSeconds < 0 || pr.PeriodSeconds < 0 || pr.FailureThreshold < 0 || pr.InitialDelaySeconds < 0 {
		p.add(where, "negative probe timing")
	}
}

func checkPortRef(where string, port intstr.IntOrString, ports map[string]bool, p *problems) {
	if port.Type == intstr.String {
		if !ports[port.StrVal] {
			p.add(where, "names port %q that the container does not declare", port.StrVal)
		}
	} else if port.IntVal < 1 || port.IntVal > 65535 {
		p.add(where, "port %d out of range", port.IntVal)
	}
}
