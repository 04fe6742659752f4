package web

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// palettes returns the custom properties of the light (:root) and dark blocks of the stylesheet.
func palettes(t *testing.T) (light, dark map[string]string) {
	t.Helper()
	re := regexp.MustCompile(`--([a-z-]+):\s*(#[0-9a-fA-F]{6})\s*;`)
	parse := func(block string) map[string]string {
		m := map[string]string{}
		for _, v := range re.FindAllStringSubmatch(block, -1) {
			m[v[1]] = v[2]
		}
		return m
	}
	i := strings.Index(stylesheet, "@media (prefers-color-scheme: dark)")
	if i < 0 {
		t.Fatal("no dark block")
	}
	light, dark = parse(stylesheet[:i]), parse(stylesheet[i:strings.Index(stylesheet[i:], "\n}\n")+i])
	for k, v := range light {
		if _, ok := dark[k]; !ok {
			dark[k] = v
		}
	}
	return light, dark
}

func luminance(t *testing.T, hex string) float64 {
	t.Helper()
	var c [3]float64
	for i := range c {
		v, err := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
		if err != nil {
			t.Fatal(err)
		}
		s := float64(v) / 255
		if s <= 0.04045 {
			c[i] = s / 12.92
		} else {
			c[i] = math.Pow((s+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*c[0] + 0.7152*c[1] + 0.0722*c[2]
}

// TestContrast holds the palette to WCAG 2.2 AA in both color schemes: 4.5:1 for text, 3:1 for
// icons, borders of controls and the focus ring.
func TestContrast(t *testing.T) {
	pairs := []struct {
		fg, bg string
		min    float64
	}{
		{"text", "card", 4.5}, {"text", "bg", 4.5}, {"text", "soft", 4.5}, {"text", "code-bg", 4.5},
		{"text", "bad-soft", 4.5}, {"text", "warn-soft", 4.5},
		{"muted", "card", 4.5}, {"muted", "bg", 4.5}, {"muted", "soft", 4.5},
		{"accent", "card", 4.5}, {"accent-hover", "card", 4.5},
		{"accent-text", "accent", 4.5}, {"accent-text", "accent-hover", 4.5},
		{"warn", "warn-soft", 4.5}, {"ok", "ok-soft", 4.5}, {"bad", "bad-soft", 4.5}, {"bad", "card", 4.5},
		{"ok", "card", 3}, {"bad", "card", 3}, {"warn", "card", 3}, {"muted", "card", 3},
		{"focus", "card", 3}, {"focus", "bg", 3},
		{"icon-ink", "ok", 3}, {"icon-ink", "bad", 3}, {"icon-ink", "warn", 3}, {"icon-ink", "muted", 3},
	}
	light, dark := palettes(t)
	for name, pal := range map[string]map[string]string{"light": light, "dark": dark} {
		for _, p := range pairs {
			fg, bg := pal[p.fg], pal[p.bg]
			if fg == "" || bg == "" {
				t.Errorf("%s: --%s or --%s missing", name, p.fg, p.bg)
				continue
			}
			l1, l2 := luminance(t, fg), luminance(t, bg)
			ratio := (math.Max(l1, l2) + 0.05) / (math.Min(l1, l2) + 0.05)
			if ratio < p.min {
				t.Errorf("%s: --%s %s on --%s %s has contrast %.2f, want ≥ %.1f", name, p.fg, fg, p.bg, bg, ratio, p.min)
			}
		}
	}
}
