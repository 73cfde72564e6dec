package chaos

import (
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"strconv"
)

// Result is one seed's table.
type Result struct {
	Seed uint64
	Rows []Row
}

var (
	white   = color.RGBA{255, 255, 255, 255}
	black   = color.RGBA{0, 0, 0, 255}
	grey    = color.RGBA{200, 200, 200, 255}
	red     = color.RGBA{200, 40, 40, 255}
	blue    = color.RGBA{40, 90, 200, 255}
	green   = color.RGBA{30, 150, 60, 255}
	palette = []color.RGBA{red, blue}
)

// WriteChart draws the table as a PNG bar chart: one group per strategy, in
// the table's order; in each group, for each seed, a red bar (lost) and a
// blue bar (phantom), each with its value written above it; a green band
// under a group whose every bar is 0. The standard library has no font, so
// the only text is the values, in a small built-in digit font; the legend is
// in docs/chaos.md.
func WriteChart(path string, results []Result) error {
	if len(results) == 0 {
		return nil
	}
	groups := len(results[0].Rows)
	seeds := len(results)
	const barW, gap, groupGap, top, bottom, height = 12, 2, 36, 30, 30, 360
	groupW := seeds*(2*barW+gap) + groupGap
	w := 40 + groups*groupW
	img := image.NewRGBA(image.Rect(0, 0, w, height))
	draw.Draw(img, img.Bounds(), &image.Uniform{white}, image.Point{}, draw.Src)
	maxV := 1
	for _, res := range results {
		for _, r := range res.Rows {
			maxV = max(maxV, r.Lost(), r.Phantom())
		}
	}
	base := height - bottom
	scale := float64(base-top-14) / float64(maxV)
	fill(img, image.Rect(20, base, w-10, base+1), black)
	for g := range groups {
		x0 := 30 + g*groupW
		zero := true
		for s, res := range results {
			if g >= len(res.Rows) {
				continue
			}
			r := res.Rows[g]
			for k, v := range []int{r.Lost(), r.Phantom()} {
				x := x0 + s*(2*barW+gap) + k*barW
				h := int(float64(v) * scale)
				fill(img, image.Rect(x, base-h, x+barW-1, base), palette[k])
				digits(img, x, base-h-12, strconv.Itoa(v), black)
				zero = zero && v == 0
			}
		}
		band := green
		if !zero {
			band = grey
		}
		fill(img, image.Rect(x0, base+6, x0+seeds*(2*barW+gap)-gap, base+14), band)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	draw.Draw(img, r, &image.Uniform{c}, image.Point{}, draw.Src)
}

// font3x5 holds the digits 0-9, three columns by five rows, one bit a pixel.
var font3x5 = [10][5]uint8{
	{7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 3, 1, 7}, {5, 5, 7, 1, 1},
	{7, 4, 7, 1, 7}, {7, 4, 7, 5, 7}, {7, 1, 2, 2, 2}, {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7},
}

// digits writes a number at (x, y), each pixel of the font two wide and two high.
func digits(img *image.RGBA, x, y int, s string, c color.RGBA) {
	for _, ch := range s {
		if ch < '0' || ch > '9' {
			continue
		}
		for row, bits := range font3x5[ch-'0'] {
			for col := range 3 {
				if bits&(4>>col) != 0 {
					fill(img, image.Rect(x+2*col, y+2*row, x+2*col+2, y+2*row+2), c)
				}
			}
		}
		x += 8
	}
}
