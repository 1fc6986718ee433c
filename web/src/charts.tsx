// Charts as plain SVG: each has a text title and description for assistive technology and a
// table of the same numbers behind a disclosure, so nothing is said by colour alone.
import { useId } from 'preact/hooks';

export interface Series {
  key: string;
  label: string;
  /** A class from style.css (fill colour with enough contrast on white). */
  className: string;
}

export interface StackedBarsProps {
  title: string;
  description: string;
  series: Series[];
  rows: { label: string; values: Record<string, number> }[];
  /** Show every n-th x label. */
  labelEvery?: number;
}

const W = 640;
const H = 200;
const PAD = { top: 10, right: 8, bottom: 28, left: 36 };

function niceMax(n: number): number {
  if (n <= 4) return 4;
  const p = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= n) return m * p;
  return 10 * p;
}

export function StackedBars({ title, description, series, rows, labelEvery = 1 }: StackedBarsProps) {
  const id = useId();
  const totals = rows.map((r) => series.reduce((n, s) => n + (r.values[s.key] ?? 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const iw = W - PAD.left - PAD.right;
  const ih = H - PAD.top - PAD.bottom;
  const bw = rows.length > 0 ? iw / rows.length : iw;
  const y = (v: number) => PAD.top + ih - (v / max) * ih;
  const ticks = [0, max / 2, max];
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby={`${id}-t ${id}-d`} preserveAspectRatio="xMidYMid meet">
        <title id={`${id}-t`}>{title}</title>
        <desc id={`${id}-d`}>{description}</desc>
        {ticks.map((t) => (
          <g key={t}>
            <line class="grid" x1={PAD.left} x2={W - PAD.right} y1={y(t)} y2={y(t)} />
            <text class="axis" x={PAD.left - 6} y={y(t) + 4} text-anchor="end">
              {t}
            </text>
          </g>
        ))}
        {rows.map((r, i) => {
          let acc = 0;
          return (
            <g key={r.label}>
              {series.map((s) => {
                const v = r.values[s.key] ?? 0;
                if (v === 0) return null;
                const top = y(acc + v);
                const h = y(acc) - top;
                acc += v;
                return (
                  <rect key={s.key} class={s.className} x={PAD.left + i * bw + bw * 0.12} width={Math.max(1, bw * 0.76)} y={top} height={h}>
                    <title>{`${r.label}: ${v} ${s.label}`}</title>
                  </rect>
                );
              })}
              {i % labelEvery === 0 ? (
                <text class="axis" x={PAD.left + i * bw + bw / 2} y={H - PAD.bottom + 16} text-anchor="middle">
                  {r.label}
                </text>
              ) : null}
            </g>
          );
        })}
        <line class="baseline" x1={PAD.left} x2={W - PAD.right} y1={y(0)} y2={y(0)} />
      </svg>
      <figcaption>
        <span class="legend">
          {series.map((s) => (
            <span key={s.key} class="legend-item">
              <svg width="12" height="12" aria-hidden="true" focusable="false">
                <rect class={s.className} width="12" height="12" />
              </svg>
              {s.label}
            </span>
          ))}
        </span>
        <details>
          <summary>{title}: the numbers</summary>
          <table>
            <thead>
              <tr>
                <th scope="col">Hour (UTC)</th>
                {series.map((s) => (
                  <th scope="col" key={s.key}>
                    {s.label}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.label}>
                  <th scope="row">{r.label}</th>
                  {series.map((s) => (
                    <td class="num" key={s.key}>
                      {r.values[s.key] ?? 0}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </details>
      </figcaption>
    </figure>
  );
}

export interface HBarsProps {
  title: string;
  series: Series[];
  rows: { label: string; values: Record<string, number> }[];
}

/** Horizontal stacked bars with the numbers written beside them. */
export function HBars({ title, series, rows }: HBarsProps) {
  const id = useId();
  const rowH = 26;
  const labelW = 150;
  const w = 560;
  const h = Math.max(rowH, rows.length * rowH);
  const totals = rows.map((r) => series.reduce((n, s) => n + (r.values[s.key] ?? 0), 0));
  const max = Math.max(1, ...totals);
  const iw = w - labelW - 180;
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${w} ${h}`} role="img" aria-labelledby={`${id}-t`}>
        <title id={`${id}-t`}>{`${title}: ${rows.map((r) => `${r.label} ${series.map((s) => `${r.values[s.key] ?? 0} ${s.label}`).join(', ')}`).join('; ') || 'none'}`}</title>
        {rows.length === 0 ? (
          <text class="axis" x={4} y={18}>
            none in this period
          </text>
        ) : null}
        {rows.map((r, i) => {
          let x = labelW;
          return (
            <g key={r.label}>
              <text class="axis" x={labelW - 6} y={i * rowH + 17} text-anchor="end">
                {r.label.length > 22 ? `${r.label.slice(0, 21)}…` : r.label}
              </text>
              {series.map((s) => {
                const v = r.values[s.key] ?? 0;
                const bw = (v / max) * iw;
                const el = v > 0 ? <rect key={s.key} class={s.className} x={x} y={i * rowH + 5} width={bw} height={rowH - 10} /> : null;
                x += bw;
                return el;
              })}
              <text class="axis" x={x + 6} y={i * rowH + 17}>
                {series.map((s) => `${r.values[s.key] ?? 0} ${s.label}`).join(' · ')}
              </text>
            </g>
          );
        })}
      </svg>
    </figure>
  );
}
