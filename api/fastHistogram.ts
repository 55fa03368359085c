// A Prometheus histogram whose observe is a few array writes. prom-client's own
// Histogram checks and hashes its labels on every observe (about a microsecond),
// too much for the checkout path; here each series is resolved once (per route and
// status) and the text is made at scrape time. It registers in a prom-client
// Registry as a custom metric: an object with a name and a get().
import type { Registry } from "prom-client";

interface SampleValue {
  readonly value: number;
  readonly labels: Record<string, string | number>;
  readonly metricName: string;
}

export class HistogramSeries {
  /** Per bucket (not cumulative), the last one for +Inf. */
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(
    readonly labels: Readonly<Record<string, string>>,
    private readonly upperBounds: readonly number[],
  ) {
    this.counts = new Float64Array(upperBounds.length + 1);
  }

  observe(value: number): void {
    let bucket = 0;
    while (bucket < this.upperBounds.length && value > this.upperBounds[bucket]!) bucket += 1;
    this.counts[bucket]! += 1;
    this.sum += value;
    this.count += 1;
  }

  samples(name: string): SampleValue[] {
    const samples: SampleValue[] = [];
    let cumulative = 0;
    this.upperBounds.forEach((bound, bucket) => {
      cumulative += this.counts[bucket]!;
      samples.push({ value: cumulative, labels: { le: bound, ...this.labels }, metricName: `${name}_bucket` });
    });
    samples.push({ value: this.count, labels: { le: "+Inf", ...this.labels }, metricName: `${name}_bucket` });
    samples.push({ value: this.sum, labels: this.labels, metricName: `${name}_sum` });
    samples.push({ value: this.count, labels: this.labels, metricName: `${name}_count` });
    return samples;
  }
}

export class FastHistogram {
  readonly type = "histogram";
  private readonly allSeries = new Map<string, HistogramSeries>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
    private readonly upperBounds: readonly number[],
    registry: Registry,
  ) {
    registry.registerMetric(this as unknown as Parameters<Registry["registerMetric"]>[0]);
  }

  /** The series of these label values (in `labelNames` order), made on first use. Keep it: this is the slow part. */
  series(labelValues: readonly string[]): HistogramSeries {
    const key = labelValues.join("\u0000");
    let series = this.allSeries.get(key);
    if (series === undefined) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((labelName, index) => (labels[labelName] = labelValues[index] ?? ""));
      series = new HistogramSeries(labels, this.upperBounds);
      this.allSeries.set(key, series);
    }
    return series;
  }

  /** What prom-client's Registry formats at scrape time. */
  get(): { name: string; help: string; type: string; values: SampleValue[]; aggregator: string } {
    const values = [...this.allSeries.values()].flatMap((series) => series.samples(this.name));
    return { name: this.name, help: this.help, type: this.type, values, aggregator: "sum" };
  }
}
