/**
 * Learning-rate schedules with warm-up, as transformers' get_*_schedule_with_warmup define them:
 * the multiplier for the optimizer step that follows `step` completed steps.
 */

import type { ScheduleKind } from '../../shared/paper-training';

export interface Schedule {
  kind: ScheduleKind;
  lr: number;
  warmupSteps: number;
  totalSteps: number;
}

export function lrMultiplier(s: Schedule, step: number): number {
  if (step < s.warmupSteps) return step / Math.max(1, s.warmupSteps);
  if (s.kind === 'constant') return 1;
  const progress = (step - s.warmupSteps) / Math.max(1, s.totalSteps - s.warmupSteps);
  if (s.kind === 'linear') return Math.max(0, 1 - progress);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress))));
}

export function learningRate(s: Schedule, step: number): number {
  return s.lr * lrMultiplier(s, step);
}

export function validateSchedule(s: Schedule): string[] {
  const problems: string[] = [];
  if (!(s.lr > 0 && s.lr < 1)) problems.push(`learning rate must be above 0 and below 1 (got ${s.lr}).`);
  if (!Number.isInteger(s.totalSteps) || s.totalSteps < 1) problems.push(`total steps must be a whole number of at least 1 (got ${s.totalSteps}).`);
  if (!Number.isInteger(s.warmupSteps) || s.warmupSteps < 0) problems.push(`warm-up steps must be a whole number of at least 0 (got ${s.warmupSteps}).`);
  else if (s.warmupSteps > s.totalSteps) problems.push(`warm-up (${s.warmupSteps} steps) is longer than the run (${s.totalSteps}).`);
  return problems;
}
