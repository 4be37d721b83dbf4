"""Models on the fused ops: AT-BSN and its student (official-checkpoint compatible)."""

from atbsn.models.atbsn import ATBSN, NBSN, TEACHER_HOLES
from atbsn.models.checkpoint import Distilled, init_student_from_teacher, load_official, model_from_state_dict

__all__ = ["ATBSN", "Distilled", "NBSN", "TEACHER_HOLES", "init_student_from_teacher", "load_official", "model_from_state_dict"]
