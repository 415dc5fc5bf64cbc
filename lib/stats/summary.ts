/**
 * Summary statistics through simple-statistics, with the edge cases experiments meet: an empty
 * list has no mean (NaN, where simple-statistics throws), and one value has no spread (0).
 */
import { mean as ssMean, median as ssMedian, sampleStandardDeviation } from 'simple-statistics';

/** Arithmetic mean; NaN for no values. */
export function mean(xs: readonly number[]): number {
  return xs.length ? ssMean([...xs]) : NaN;
}

/** Sample standard deviation (n − 1); 0 for fewer than two values. */
export function sampleSd(xs: readonly number[]): number {
  return xs.length < 2 ? 0 : sampleStandardDeviation([...xs]);
}

/** Median; NaN for no values. */
export function median(xs: readonly number[]): number {
  return xs.length ? ssMedian([...xs]) : NaN;
}
