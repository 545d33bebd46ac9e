"""The one place DeskPhone imports Qt (PySide6), as Anki's aqt/qt does.

Everything in app/ imports Qt names from here, so a move to another binding or
version touches one file. pbx/ never imports this module (design.md).
"""

from __future__ import annotations

from PySide6.QtCore import (
    QAbstractListModel,
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSize,
    QSocketNotifier,
    Qt,
    QTimer,
    Signal,
    SignalInstance,
    Slot,
)
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QGuiApplication,
    QIcon,
    QKeyEvent,
    QKeySequence,
    QShortcut,
)
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLayout,
    QLineEdit,
    QListView,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QStatusBar,
    QSystemTrayIcon,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

__all__ = [
    "QAbstractListModel", "QAbstractTableModel", "QAction", "QApplication", "QCheckBox",
    "QCloseEvent", "QComboBox", "QDialog", "QDialogButtonBox", "QFormLayout", "QGridLayout",
    "QGuiApplication", "QHBoxLayout", "QHeaderView", "QIcon", "QInputDialog", "QKeyEvent",
    "QKeySequence", "QLabel", "QLayout", "QLineEdit", "QListView", "QMainWindow", "QMenu",
    "QMessageBox",
    "QModelIndex", "QObject", "QPersistentModelIndex", "QProgressBar", "QPushButton",
    "QShortcut", "QSize", "QSocketNotifier",
    "QSpinBox", "QStatusBar", "QSystemTrayIcon", "QTabWidget", "QTableView", "QTimer",
    "QVBoxLayout", "QWidget", "Qt", "Signal", "SignalInstance", "Slot",
]  # fmt: skip
