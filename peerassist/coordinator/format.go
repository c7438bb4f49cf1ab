package coordinator

import "strconv"

func formatRate(perSecond float64) string { return strconv.FormatFloat(perSecond, 'g', 4, 64) }
