// One hourly chart (uPlot): hours along x in UTC, one series per model (two for percentiles:
// p50 solid, p95 dashed). uPlot's legend shows the values at the cursor.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";

const COLOURS = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];

export function colourOf(index) {
  return COLOURS[index % COLOURS.length];
}

// 24-hour UTC labels; midnight shows the date instead.
function hourLabel(ts) {
  const d = new Date(ts * 1000);
  const hour = d.getUTCHours();
  return hour === 0 ? d.toISOString().slice(5, 10) : `${String(hour).padStart(2, "0")}:00`;
}

export function HourlyChart({ id, title, hours, series, format }) {
  const box = useRef(null);
  useEffect(() => {
    const element = box.current;
    const options = {
      width: Math.max(element.clientWidth, 240),
      height: 180,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      cursor: { points: { size: 7 } },
      legend: { live: true },
      // Half an hour of margin either side, so that the first and last hours' points show whole.
      scales: {
        x: { time: true, auto: false, range: [hours[0] - 1800, hours[hours.length - 1] + 1800] },
        y: { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 1] },
      },
      axes: [
        { values: (u, ticks) => ticks.map(hourLabel) },
        { size: 60, values: (u, ticks) => ticks.map((v) => format(v)) },
      ],
      series: [
        { label: "UTC", value: "{YYYY}-{MM}-{DD} {HH}:00" },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.colour,
          dash: s.dashed ? [5, 4] : undefined,
          width: 2,
          // Percentiles have no value in hours without calls: their points stand alone.
          points: { show: s.gaps || hours.length <= 72, size: 5, fill: s.colour },
          value: (u, v) => (v == null ? "–" : format(v)),
        })),
      ],
    };
    const plot = new uPlot(options, [hours, ...series.map((s) => s.values)], element);
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(element.clientWidth, 240), height: 180 }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [hours, series]);
  return (
    <figure class="chart panel" data-metric={id}>
      <figcaption>{title}</figcaption>
      <div ref={box} class="plot" role="img" aria-label={title} />
    </figure>
  );
}
